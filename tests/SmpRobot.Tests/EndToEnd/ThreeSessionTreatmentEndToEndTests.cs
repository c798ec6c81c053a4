using System.Globalization;
using System.Text.Json;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Planning;

namespace SmpRobot.Tests.EndToEnd;

/// <summary>
/// A treatment of three sessions from a Norwood design, run as the clinic would with the real processes on the simulated
/// gantry, the person's skin kept between sessions (--sim-skin) and the board worn elsewhere each time (--sim-board):
/// session 1 probed and placed; for sessions 2 and 3, each head position probed, the earlier dots found by the synthetic
/// camera and matched (a controller with the camera), then placed on that match (a controller without one, fast). The
/// truth is the simulated skin: every dot pigmented once, and each session's new dots keep the design's spacing to the
/// dots really there. The reports are written.
/// </summary>
public sealed class ThreeSessionTreatmentEndToEndTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(240);
    private static readonly string DesignPath = Path.Combine(TestProfiles.RepoRoot, "hardware", "designs", "demo-norwood-vertex.design.json");
    private readonly string _dir = Directory.CreateTempSubdirectory("smp-e2e-treatment-").FullName;

    // Where the board sits each session against where the design assumes it: mm and degrees (DX,DY,DZ,RX,RY,RZ).
    private static readonly string[] Boards = ["0,0,0,0,0,0", "1.5,-1,0,0,0,2", "-1,1.5,0,0,0,-2.5"];

    [Fact]
    public async Task Three_sessions_of_a_Norwood_design_are_placed_each_on_the_earlier_dots_the_camera_finds_with_the_board_moved_between_them()
    {
        var skin = Path.Combine(_dir, "skin.txt");
        var design = DesignResolver.Resolve(DesignLoader.Load(DesignPath), TestProfiles.Sim()).Design!;
        var designDots = DesignPlanner.Generate(design);
        var plans = DesignPlans.Build(designDots, TestProfiles.Sim());
        string treatmentId;
        var sessions = new List<string>();
        var placed = new List<int>();

        await using (var controller = await ControllerAsync("none", Boards[0]))
        {
            var start = await SmpAsync(controller.Url, 0, "treatment", "start", DesignPath, "--client", "C-0310", "--json");
            var info = JsonDocument.Parse(start.Stdout).RootElement;
            treatmentId = info.GetProperty("id").GetString()!;
            sessions.Add(info.GetProperty("sessions")[0].GetProperty("session").GetProperty("id").GetString()!);
            placed.Add(await PlaceAsync(controller.Url, sessions[0]));
        }

        for (var k = 2; k <= 3; k++)
        {
            string sessionId;
            IReadOnlyList<int> positions;
            // The person is back, the board a little elsewhere: the session is made and each head position probed.
            await using (var controller = await ControllerAsync("none", Boards[k - 1]))
            {
                var next = await SmpAsync(controller.Url, 0, "treatment", "next", treatmentId, "--early", "end-to-end test: weeks pass in seconds", "--json");
                var made = JsonDocument.Parse(next.Stdout).RootElement.GetProperty("sessions").EnumerateArray().Last();
                Assert.Equal(k, made.GetProperty("number").GetInt32());
                sessionId = made.GetProperty("session").GetProperty("id").GetString()!;
                sessions.Add(sessionId);
                await SmpAsync(controller.Url, 0, "machine", "home");
                positions = [.. plans.Sessions[k - 1].Plan.Dots.Select(d => (int)d.Patch).Distinct().Order()];
                foreach (var patch in positions) await SmpAsync(controller.Url, 0, "surface", "probe", sessionId, "--patch", patch.ToString(CultureInfo.InvariantCulture));
                // Probed but not matched: the controller refuses to place it.
                var refused = await SmpAsync(controller.Url, 1, "run", "--session", sessionId, "--no-ui");
                Assert.Contains("the controller has no camera", refused.Stderr, StringComparison.Ordinal);
            }

            // The camera finds the earlier sessions' dots around the board and matches them to the record.
            await using (var camera = await ControllerAsync("synthetic:still", Boards[k - 1], timeScale: "1"))
            {
                foreach (var patch in positions)
                {
                    var match = await SmpAsync(camera.Url, 0, "treatment", "match", sessionId, "--patch", patch.ToString(CultureInfo.InvariantCulture), "--json");
                    var m = JsonDocument.Parse(match.Stdout).RootElement;
                    Assert.True(m.GetProperty("accepted").GetBoolean(), match.Stdout);
                    Assert.True(m.GetProperty("matched").GetInt32() >= 0.95 * m.GetProperty("expectedInView").GetInt32(), match.Stdout);
                    Assert.InRange(m.GetProperty("residualRmsMm").GetDouble(), 0, 0.15);
                }
            }

            // Placed on the match, fast (no camera needed once the head positions are registered).
            await using (var controller = await ControllerAsync("none", Boards[k - 1]))
            {
                placed.Add(await PlaceAsync(controller.Url, sessionId));
            }
        }

        // The truth: the simulated skin holds one pigment point per dot placed (none twice), in the sessions' order.
        var tattoos = (await File.ReadAllLinesAsync(skin)).Where(l => l.Length > 0).Select(l =>
        {
            var p = l.Split(' ').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
            return new Vec3(p[0], p[1], p[2]);
        }).ToList();
        Assert.Equal(placed.Sum(), tattoos.Count);
        var minSpacingMm = designDots.Dots.Min(d => d.Region.MinSpacingMm);
        var before = tattoos.Take(placed[0]).ToList();
        for (var k = 1; k < 3; k++)
        {
            var added = tattoos.Skip(before.Count).Take(placed[k]).ToList();
            var closest = added.Min(n => before.Min(o => o.DistanceTo(n)));
            // The board moved 2-3 mm and 2-2.5 degrees: placed on probing alone, the new dots would land on the old ones.
            Assert.True(closest >= 0.9 * minSpacingMm, $"session {k + 1}: a new dot {closest:0.000} mm from an earlier one (design minimum {minSpacingMm:0.000} mm)");
            before.AddRange(added);
        }

        // The record and the reports.
        await using (var controller = await ControllerAsync("none", Boards[2]))
        {
            var show = JsonDocument.Parse((await SmpAsync(controller.Url, 0, "treatment", "show", treatmentId, "--json")).Stdout).RootElement;
            Assert.All(show.GetProperty("sessions").EnumerateArray(), s => Assert.Equal("completed", s.GetProperty("session").GetProperty("state").GetString()));
            var report = Path.Combine(_dir, "treatment.pdf");
            await SmpAsync(controller.Url, 0, "report", "treatment", treatmentId, "--pdf", report);
            var sessionReport = Path.Combine(_dir, "session-3.pdf");
            await SmpAsync(controller.Url, 0, "report", sessions[2], "--pdf", sessionReport);
            foreach (var pdf in new[] { report, sessionReport })
            {
                var head = new byte[5];
                await using var file = File.OpenRead(pdf);
                Assert.Equal(5, await file.ReadAsync(head));
                Assert.Equal("%PDF-", System.Text.Encoding.ASCII.GetString(head));
            }
        }
    }

    /// <summary>Starts the session (smp run --session) and resumes it after each head position until it completes; returns the dots placed.</summary>
    private static async Task<int> PlaceAsync(string url, string sessionId)
    {
        var run = await SmpAsync(url, null, "run", "--session", sessionId, "--no-ui", "--json");
        for (var resumes = 0; run.ExitCode == 3 && resumes < 8; resumes++)
        {
            var held = JsonDocument.Parse(run.Stdout).RootElement;
            Assert.Equal("PAUSED", held.GetProperty("state").GetString());
            run = await SmpAsync(url, null, "session", "resume", sessionId, "--no-ui", "--json");
        }
        Assert.True(run.ExitCode == 0, run.Stdout + run.Stderr);
        var done = JsonDocument.Parse(run.Stdout).RootElement;
        Assert.Equal("COMPLETED", done.GetProperty("state").GetString());
        var dots = done.GetProperty("dots");
        Assert.Equal(dots.GetProperty("total").GetInt32(), dots.GetProperty("placed").GetInt32());
        return dots.GetProperty("placed").GetInt32();
    }

    private sealed record Outcome(int ExitCode, string Stdout, string Stderr);

    private static async Task<Outcome> SmpAsync(string url, int? expectedExit, params string[] args)
    {
        await using var smp = RealProcess.Start("smp", [.. args, "--controller", url]);
        var exit = await smp.ExitCodeAsync(Timeout);
        if (expectedExit is { } expected) Assert.True(exit == expected, $"smp {string.Join(' ', args)} exited {exit}: {smp.Stdout}\n{smp.Stderr}");
        return new Outcome(exit, smp.Stdout, smp.Stderr);
    }

    private sealed class Controller(RealProcess process, string url) : IAsyncDisposable
    {
        public string Url => url;

        public async ValueTask DisposeAsync()
        {
            process.Terminate();
            await process.ExitCodeAsync(Timeout);
            await process.DisposeAsync();
        }
    }

    private async Task<Controller> ControllerAsync(string camera, string board, string timeScale = "40")
    {
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        var process = RealProcess.Start("smp-controller", "--gantry", "sim", "--camera", camera, "--time-scale", timeScale, "--data", Path.Combine(_dir, "data"),
            "--urls", url, "--insecure-loopback", "--sim-skin", Path.Combine(_dir, "skin.txt"), "--sim-board", board);
        try
        {
            await process.WaitForLineAsync(l => l.Contains("Now listening", StringComparison.Ordinal), Timeout);
            return new Controller(process, url);
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // A controller's file still held: the temp directory is cleaned by the OS.
        }
    }
}
