using System.Diagnostics;
using System.Globalization;
using SmpRobot.Contracts.V1;
using SmpRobot.Operator.Cli;
using SmpRobot.Operator.Cli.Commands;

namespace SmpRobot.Tests.Cli;

/// <summary>
/// The demo's data folders: which ones a later demo removes (only marked, unkept folders of demos that no longer
/// run), when a demo keeps its own, and the advice it prints to go on with a kept one. Against a temporary root,
/// never /tmp itself.
/// </summary>
public sealed class DemoFolderTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    private readonly DirectoryInfo root = Directory.CreateTempSubdirectory("smp-demo-folders-test-");

    public void Dispose() => root.Delete(recursive: true);

    private static DemoProcess Self() => DemoProcess.Current();

    /// <summary>A process that ran and exited: its id names no live process that started when it did.</summary>
    private static async Task<DemoProcess> DeadProcessAsync()
    {
        using var process = Process.Start(new ProcessStartInfo("/bin/true") { UseShellExecute = false })!;
        var identity = DemoProcess.Of(process);
        await process.WaitForExitAsync().WaitAsync(Timeout);
        return identity with { StartedUtc = identity.StartedUtc ?? DateTime.UtcNow };
    }

    private string Folder(string name, DemoProcess? owner = null, bool kept = false, DemoProcess? controller = null, string? markerText = null)
    {
        var path = Path.Combine(root.FullName, name);
        Directory.CreateDirectory(path);
        File.WriteAllText(Path.Combine(path, "smp.db"), "data");
        if (markerText is not null) File.WriteAllText(Path.Combine(path, DemoFolder.MarkerFileName), markerText);
        else if (owner is not null) File.WriteAllText(Path.Combine(path, DemoFolder.MarkerFileName), Marker(owner, kept, controller));
        return path;
    }

    private static string Marker(DemoProcess owner, bool kept, DemoProcess? controller) =>
        "{ \"owner\": " + ProcessJson(owner) + (controller is null ? "" : ", \"controller\": " + ProcessJson(controller)) + ", \"kept\": " + (kept ? "true" : "false") + " }";

    private static string ProcessJson(DemoProcess p) =>
        string.Create(CultureInfo.InvariantCulture, $"{{ \"pid\": {p.Pid}, \"startedUtc\": \"{p.StartedUtc:O}\" }}");

    [Fact]
    public async Task Stale_cleanup_removes_only_unkept_marked_folders_whose_demo_and_controller_no_longer_run()
    {
        var dead = await DeadProcessAsync();
        var self = Self();
        var deadUnkept = Folder("smp-demo-dead", dead);
        var deadUnkept2 = Folder("smp-demo-dead2", dead, controller: await DeadProcessAsync());
        // The pid of a live process, but not the process that made the folder (started an hour earlier): pid reused.
        var reusedPid = Folder("smp-demo-reused", self with { StartedUtc = self.StartedUtc!.Value.AddHours(-1) });
        var kept = Folder("smp-demo-kept", dead, kept: true);
        var live = Folder("smp-demo-live", self);
        var liveController = Folder("smp-demo-live-controller", dead, controller: self);
        var unmarked = Folder("smp-demo-unmarked");
        var badMarker = Folder("smp-demo-bad-marker", markerText: "{ not json");
        var noOwner = Folder("smp-demo-no-owner", markerText: "{ \"kept\": false }");
        var otherName = Folder("not-a-demo", dead);
        var target = Folder("elsewhere", dead);
        var link = Path.Combine(root.FullName, "smp-demo-link");
        Directory.CreateSymbolicLink(link, target);
        var file = Path.Combine(root.FullName, "smp-demo-file");
        await File.WriteAllTextAsync(file, "not a folder");

        var removed = DemoFolder.RemoveStale(root.FullName);

        Assert.Equal(new[] { deadUnkept, deadUnkept2, reusedPid }.Order(), removed.Order());
        Assert.False(Directory.Exists(deadUnkept));
        Assert.False(Directory.Exists(deadUnkept2));
        Assert.False(Directory.Exists(reusedPid));
        foreach (var left in new[] { kept, live, liveController, unmarked, badMarker, noOwner, otherName, target })
        {
            Assert.True(File.Exists(Path.Combine(left, "smp.db")), left);
        }
        Assert.True(Directory.Exists(link));
        Assert.True(File.Exists(file));
        Assert.Empty(DemoFolder.RemoveStale(root.FullName)); // nothing else qualifies
    }

    [Fact]
    public async Task A_live_process_is_its_id_and_start_time()
    {
        var self = Self();
        Assert.NotNull(self.StartedUtc);
        Assert.True(self.IsAlive());
        Assert.False((await DeadProcessAsync()).IsAlive());
        Assert.False((self with { StartedUtc = self.StartedUtc!.Value.AddMinutes(-5) }).IsAlive());
        // Without a start time there is no telling a reused id apart: counted alive, so nothing live is ever removed.
        Assert.True((self with { StartedUtc = null }).IsAlive());
    }

    [Fact]
    public void A_demo_folder_is_marked_with_its_owner_and_controller_and_kept_on_purpose()
    {
        var folder = DemoFolder.Create(Self());
        try
        {
            Assert.StartsWith(DemoFolder.Prefix, Path.GetFileName(folder.Path), StringComparison.Ordinal);
            var marker = DemoFolder.ReadMarker(folder.Path)!;
            Assert.Equal(Environment.ProcessId, marker.Owner.Pid);
            Assert.False(marker.Kept);
            Assert.Null(marker.Controller);

            folder.SetController(new DemoProcess(4242, new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc)));
            folder.MarkKept("--keep");
            marker = DemoFolder.ReadMarker(folder.Path)!;
            Assert.True(marker.Kept);
            Assert.Equal("--keep", marker.Reason);
            Assert.Equal(new DemoProcess(4242, new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc)), marker.Controller);
            Assert.Single(Directory.GetFiles(folder.Path)); // the marker only, no temporary file left
        }
        finally
        {
            folder.Remove();
        }
        Assert.False(Directory.Exists(folder.Path));
    }

    private static Session Session(SessionState state, int inDoubt, params string[] ids)
    {
        var s = new Session { Id = "s-1", State = state, Dots = new DotCounts { Total = 10, InDoubt = inDoubt, Placed = 10 - inDoubt } };
        foreach (var id in ids) s.InDoubt.Add(new DotStatus { DotId = id });
        return s;
    }

    [Fact]
    public void Only_a_clean_end_lets_the_demo_remove_its_folder()
    {
        Session[] completed = [Session(SessionState.Completed, 0)];
        Assert.Null(new DemoCommand.DemoEnd(false, 0, completed, true).KeepReason());

        Assert.Equal("--keep", new DemoCommand.DemoEnd(true, 0, completed, true).KeepReason());
        Assert.Equal("its controller did not stop", new DemoCommand.DemoEnd(false, 0, completed, false).KeepReason());
        Assert.Equal("the demo did not finish", new DemoCommand.DemoEnd(false, null, completed, true).KeepReason());
        Assert.Contains("could not be read", new DemoCommand.DemoEnd(false, 0, null, true).KeepReason(), StringComparison.Ordinal);
        Assert.Equal("session s-1 ended EMERGENCY_STOPPED with 1 dot(s) in doubt",
            new DemoCommand.DemoEnd(false, 3, [Session(SessionState.EmergencyStopped, 1, "d7")], true).KeepReason());
        Assert.Equal("session s-1 ended FAULTED", new DemoCommand.DemoEnd(false, 1, [Session(SessionState.Faulted, 0)], true).KeepReason());
        Assert.Equal("session s-1 ended COMPLETED with 2 dot(s) in doubt", new DemoCommand.DemoEnd(false, 0, [Session(SessionState.Completed, 2)], true).KeepReason());
        Assert.Equal("the demo ended with exit code 3", new DemoCommand.DemoEnd(false, 3, completed, true).KeepReason());
        Assert.Equal("no session ran", new DemoCommand.DemoEnd(false, 0, [], true).KeepReason());
    }

    [Fact]
    public void The_kept_folder_advice_is_the_exact_controller_line_then_resolve_home_and_resume()
    {
        string[] args = ["--gantry", "sim", "--camera", "synthetic:sway", "--time-scale", "1", "--data", "/tmp/smp-demo-ab c", "--urls", "http://127.0.0.1:50999"];
        var end = new DemoCommand.DemoEnd(false, 3, [Session(SessionState.EmergencyStopped, 1, "d00124")], true);
        var text = DemoCommand.KeptText("/tmp/smp-demo-ab c", end.KeepReason()!, end, "/opt/smp/smp-controller", args, "http://127.0.0.1:50999", "--controller http://127.0.0.1:50999");
        var lines = text.Split('\n').Select(l => l.Trim()).ToList();

        Assert.Contains("kept the demo's data folder /tmp/smp-demo-ab c (session s-1 ended EMERGENCY_STOPPED with 1 dot(s) in doubt).", lines);
        Assert.Contains("/opt/smp/smp-controller --gantry sim --camera synthetic:sway --time-scale 1 --data '/tmp/smp-demo-ab c' --urls http://127.0.0.1:50999", lines);
        var resolve = lines.FindIndex(l => l.StartsWith("smp session resolve", StringComparison.Ordinal));
        Assert.Equal(
            [
                "smp session resolve s-1 --dot d00124 --as placed --controller http://127.0.0.1:50999",
                "smp session resolve s-1 --dot d00124 --as redo --controller http://127.0.0.1:50999",
                "smp session resolve s-1 --dot d00124 --as skip --controller http://127.0.0.1:50999",
                "smp machine home --controller http://127.0.0.1:50999",
                "smp session resume s-1 --controller http://127.0.0.1:50999",
            ],
            lines.Skip(resolve).Take(5));
        Assert.Contains("Later demos leave it alone; remove it when done: rm -r '/tmp/smp-demo-ab c'", lines);
        Assert.DoesNotContain(lines, l => l.Contains("still runs", StringComparison.Ordinal));
    }

    [Fact]
    public void A_kept_completed_demo_points_at_its_session_and_a_controller_that_did_not_stop_is_named()
    {
        var end = new DemoCommand.DemoEnd(true, 0, [Session(SessionState.Completed, 0)], false);
        var text = DemoCommand.KeptText("/tmp/d", end.KeepReason()!, end, "smp-controller", ["--data", "/tmp/d"], "http://127.0.0.1:50051", null);
        Assert.Contains("Its controller still runs at http://127.0.0.1:50051", text, StringComparison.Ordinal);
        Assert.Contains("  smp-controller --data /tmp/d\n", text.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.Contains("  smp session show s-1\n", text.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.DoesNotContain("resume", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/tmp/smp-demo-x1", "/tmp/smp-demo-x1")]
    [InlineData("synthetic:jerk:2", "synthetic:jerk:2")]
    [InlineData("a b", "'a b'")]
    [InlineData("it's", "'it'\\''s'")]
    [InlineData("", "''")]
    public void Shell_words_are_quoted_only_when_needed(string word, string expected) => Assert.Equal(expected, DemoCommand.ShellWord(word));
}
