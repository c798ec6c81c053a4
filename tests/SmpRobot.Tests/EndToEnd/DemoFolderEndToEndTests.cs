using System.Text.Json;
using SmpRobot.Operator.Cli;

namespace SmpRobot.Tests.EndToEnd;

/// <summary>
/// The real <c>smp demo</c> and its data folder, in a temporary folder of its own (TMPDIR): removed after a clean
/// session, kept with <c>--keep</c> with a controller line that really brings the session back, and the unkept folders
/// of dead demos removed as it starts.
/// </summary>
[Collection(ControllerCollection.Name)]
public sealed class DemoFolderEndToEndTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    private readonly DirectoryInfo tmp = Directory.CreateTempSubdirectory("smp-e2e-demo-tmp-");

    public void Dispose() => tmp.Delete(recursive: true);

    /// <summary>The demo's environment: its temporary folder is this test's.</summary>
    internal static Dictionary<string, string> TempDirEnvironment(string folder) => new() { ["TMPDIR"] = folder };

    private string[] DemoFolders() => [.. Directory.GetDirectories(tmp.FullName, DemoFolder.Prefix + "*")];

    private string MarkedFolder(string name, int pid, bool kept)
    {
        var path = Path.Combine(tmp.FullName, name);
        Directory.CreateDirectory(path);
        File.WriteAllText(Path.Combine(path, "smp.db"), "data");
        // A start time no process of that id has now: the owner is gone.
        File.WriteAllText(Path.Combine(path, DemoFolder.MarkerFileName), $"{{ \"owner\": {{ \"pid\": {pid}, \"startedUtc\": \"2001-01-01T00:00:00Z\" }}, \"kept\": {(kept ? "true" : "false")} }}");
        return path;
    }

    [Fact]
    public async Task A_completed_demo_removes_its_folder_and_the_unkept_folders_of_dead_demos()
    {
        var stale = MarkedFolder("smp-demo-stale1", Environment.ProcessId, kept: false);
        var kept = MarkedFolder("smp-demo-kept1", Environment.ProcessId, kept: true);
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        await using var smp = RealProcess.StartWith(TempDirEnvironment(tmp.FullName), "smp", "demo", "--dots", "3", "--camera", "none", "--time-scale", "200", "--no-ui", "--controller", url);

        Assert.Equal(0, await smp.ExitCodeAsync(Timeout));
        Assert.Contains($"removed 1 data folder(s) left by earlier demos that no longer run and were not kept: {stale}", smp.Stderr, StringComparison.Ordinal);
        Assert.Contains($"removed the demo's data folder {tmp.FullName}{Path.DirectorySeparatorChar}{DemoFolder.Prefix}", smp.Stderr, StringComparison.Ordinal);
        Assert.Equal([kept], DemoFolders());
        Assert.True(File.Exists(Path.Combine(kept, "smp.db")));
    }

    [Fact]
    public async Task With_keep_the_folder_stays_and_its_printed_controller_line_brings_the_session_back()
    {
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        string folder;
        string sessionId;
        string restart;
        await using (var smp = RealProcess.StartWith(TempDirEnvironment(tmp.FullName), "smp", "demo", "--dots", "3", "--camera", "none", "--time-scale", "200", "--no-ui", "--json", "--keep", "--controller", url))
        {
            Assert.Equal(0, await smp.ExitCodeAsync(Timeout));
            sessionId = JsonDocument.Parse(smp.Stdout).RootElement.GetProperty("sessionId").GetString()!;
            folder = Assert.Single(DemoFolders());
            Assert.True(File.Exists(Path.Combine(folder, "smp.db")));
            Assert.True(DemoFolder.ReadMarker(folder)!.Kept);
            Assert.Contains($"kept the demo's data folder {folder} (--keep)", smp.Stderr, StringComparison.Ordinal);
            var exe = RealProcess.ExecutablePath("smp-controller");
            var expected = $"{exe} --gantry sim --camera none --time-scale 200 --data {folder} --urls {url} --insecure-loopback";
            restart = Assert.Single(smp.Stderr.Split('\n'), l => l.Trim() == expected).Trim();
            Assert.Contains($"  smp session show {sessionId} --controller {url}", smp.Stderr, StringComparison.Ordinal);
        }

        // The line as printed, run: the controller on the kept folder has the session, as the demo left it.
        var words = restart.Split(' ');
        await using var controller = RealProcess.Start(words[0], words[1..]);
        await controller.WaitForLineAsync(l => l.Contains("Now listening", StringComparison.Ordinal), Timeout);
        await using (var show = RealProcess.Start("smp", "session", "show", sessionId, "--json", "--controller", url))
        {
            Assert.Equal(0, await show.ExitCodeAsync(Timeout));
            var session = JsonDocument.Parse(show.Stdout).RootElement;
            Assert.Equal("COMPLETED", session.GetProperty("state").GetString());
            Assert.Equal(3, session.GetProperty("dots").GetProperty("placed").GetInt32());
        }
        controller.Terminate();
        Assert.Equal(0, await controller.ExitCodeAsync(Timeout));
        // A later demo leaves a kept folder alone.
        Assert.Empty(DemoFolder.RemoveStale(tmp.FullName));
        Assert.True(Directory.Exists(folder));
    }
}
