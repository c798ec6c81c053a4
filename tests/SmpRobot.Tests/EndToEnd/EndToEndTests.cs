using System.Text.Json;
using Grpc.Net.Client;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Tests.EndToEnd;

/// <summary>The real executables, as an operator runs them: smp and smp-controller as processes.</summary>
[Collection(ControllerCollection.Name)]
public class EndToEndTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Demo_runs_a_whole_session_and_prints_one_json_object()
    {
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        await using var smp = RealProcess.Start("smp", "demo", "--dots", "25", "--camera", "none", "--time-scale", "200", "--no-ui", "--json", "--controller", url);
        Assert.Equal(0, await smp.ExitCodeAsync(Timeout));

        var json = JsonDocument.Parse(smp.Stdout).RootElement; // exactly one object: parsing fails on anything else
        Assert.Equal("COMPLETED", json.GetProperty("state").GetString());
        Assert.Equal(25, json.GetProperty("dots").GetProperty("total").GetInt32());
        Assert.Equal(25, json.GetProperty("dots").GetProperty("placed").GetInt32());
        Assert.Equal(0, json.GetProperty("dots").GetProperty("inDoubt").GetInt32());
        var elapsed = json.GetProperty("elapsedSeconds").GetDouble();
        var kinematic = json.GetProperty("kinematicSeconds").GetDouble();
        Assert.True(kinematic > 0 && elapsed >= kinematic * 0.99, $"elapsed {elapsed} s vs kinematic {kinematic} s");
        Assert.StartsWith("s-", json.GetProperty("sessionId").GetString());
        Assert.False(json.GetProperty("tracking").GetProperty("tracking").GetBoolean());
        // The machine as measured after the end: needle drive off, homed in grbl's negative machine space.
        var machine = json.GetProperty("machine");
        Assert.False(machine.GetProperty("needleOn").GetBoolean());
        Assert.True(machine.GetProperty("position").GetProperty("zMm").GetDouble() <= 0);
    }

    [Fact]
    public async Task Demo_by_default_follows_a_swaying_head_with_the_synthetic_camera()
    {
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        // Its own temporary folder: a dot left in doubt keeps the demo's data folder, which must not pile up in /tmp.
        var tmp = Directory.CreateTempSubdirectory("smp-e2e-demo-tmp-");
        await using var smp = RealProcess.StartWith(DemoFolderEndToEndTests.TempDirEnvironment(tmp.FullName), "smp", "demo", "--dots", "6", "--no-ui", "--json", "--controller", url);
        // At time scale 1 the demo homes, calibrates (about 20 s), measures the scalp (8 probes, about 25 s), then places.
        var code = await smp.ExitCodeAsync(TimeSpan.FromSeconds(180));
        tmp.Delete(recursive: true);

        var json = JsonDocument.Parse(smp.Stdout).RootElement;
        var tracking = json.GetProperty("tracking");
        Assert.True(tracking.GetProperty("tracking").GetBoolean());
        Assert.Equal("tracked:synthetic:sway", tracking.GetProperty("source").GetString());
        // A stale frame while a needle is down (a loaded CI machine) pulls it out: that dot is in doubt and the session waits for the operator.
        var dots = json.GetProperty("dots");
        Assert.Equal(6, dots.GetProperty("placed").GetInt32() + dots.GetProperty("inDoubt").GetInt32());
        Assert.True(dots.GetProperty("inDoubt").GetInt32() == 0 ? code == 0 && json.GetProperty("state").GetString() == "COMPLETED" : code != 0, $"exit {code}: {smp.Stdout}");
        // The live progress lines (stderr without a terminal) carry the tracking state.
        Assert.Contains("tracked:synthetic:sway · pose ", smp.Stderr, StringComparison.Ordinal);
        // The scalp of the swaying head was measured before the first dot, and the registration is valid.
        Assert.Contains("the scalp of head position 1 measured: registration r-", smp.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_recorded_camera_with_an_opencv_calibration_file_runs_through_the_real_controller()
    {
        var dir = Directory.CreateTempSubdirectory("smp-e2e-camera-").FullName;
        var frames = Tracking.RecordedCameraTests.RenderFrames(dir);
        var calibration = Path.Combine(dir, "camera.yml");
        Tracking.RecordedCameraTests.WriteOpenCvCalibration(calibration);
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        await using var controller = RealProcess.Start("smp-controller", "--urls", url, "--data", Path.Combine(dir, "data"), "--camera", "file:" + frames, "--intrinsics", calibration);
        // The folder is played once; the tracker keeps its last frame.
        await controller.WaitForLineAsync(l => l.Contains("ended", StringComparison.Ordinal) && l.Contains("file:", StringComparison.Ordinal), Timeout);

        var png = Path.Combine(dir, "preview.png");
        await using var preview = RealProcess.Start("smp", "camera", "preview", "--png", png, "--json", "--controller", url);
        Assert.Equal(0, await preview.ExitCodeAsync(Timeout));
        var json = JsonDocument.Parse(preview.Stdout).RootElement;
        Assert.True(json.GetProperty("boardFound").GetBoolean());
        Assert.Equal("file " + Path.GetFullPath(calibration), json.GetProperty("intrinsics").GetString());
        var last = Tracking.RecordedCameraTests.Poses.Length - 1;
        Assert.Equal(last, json.GetProperty("frameSequence").GetInt64());
        var t = json.GetProperty("cameraFromHead").GetProperty("translationMm");
        var measured = new SmpRobot.Geometry.Vec3(t.GetProperty("xMm").GetDouble(), t.GetProperty("yMm").GetDouble(), t.GetProperty("zMm").GetDouble());
        Assert.True(measured.DistanceTo(Tracking.RecordedCameraTests.Poses[last].Translation) < 0.15, $"the board was measured at {measured}, truly at {Tracking.RecordedCameraTests.Poses[last].Translation}");
        Assert.True(File.Exists(png));

        controller.Terminate();
        Assert.Equal(0, await controller.ExitCodeAsync(Timeout));
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public async Task Run_without_a_calibration_is_refused_before_homing_or_creating_anything_naming_the_override()
    {
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        var data = Directory.CreateTempSubdirectory("smp-e2e-").FullName;
        await using var controller = RealProcess.Start("smp-controller", "--urls", url, "--data", data, "--camera", "synthetic:still");
        await controller.WaitForLineAsync(l => l.Contains("Now listening", StringComparison.Ordinal), Timeout);
        var plan = Path.Combine(data, "plan.json");
        await File.WriteAllTextAsync(plan, Google.Protobuf.JsonFormatter.Default.Format(SmpRobot.Controller.Plans.DemoPlanGenerator.Generate(5, seed: 2)));

        await using var run = RealProcess.Start("smp", "run", plan, "--no-ui", "--controller", url);
        Assert.Equal(1, await run.ExitCodeAsync(Timeout));
        Assert.Contains("no valid camera-to-gantry calibration", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("--calibration-override", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("nothing was moved or created", run.Stderr, StringComparison.Ordinal);

        await using var sessions = RealProcess.Start("smp", "sessions", "--json", "--controller", url);
        Assert.Equal(0, await sessions.ExitCodeAsync(Timeout));
        Assert.Equal(0, JsonDocument.Parse(sessions.Stdout).RootElement.GetProperty("sessions").GetArrayLength());
        await using var machine = RealProcess.Start("smp", "machine", "status", "--json", "--controller", url);
        Assert.Equal(0, await machine.ExitCodeAsync(Timeout));
        Assert.False(JsonDocument.Parse(machine.Stdout).RootElement.GetProperty("homed").GetBoolean());

        controller.Terminate();
        Assert.Equal(0, await controller.ExitCodeAsync(Timeout));
    }

    [Fact]
    public async Task Ctrl_c_during_homing_stops_the_gantry_and_exits_3_saying_where_it_stands()
    {
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        var data = Directory.CreateTempSubdirectory("smp-e2e-").FullName;
        // Time scale 0.25: the homing cycle takes about 8 s, well past the interrupt. (SIGINT reaches smp only when
        // the suite was not started as a background job: a non-interactive shell's `cmd &` ignores SIGINT, children
        // inherit that, and .NET then leaves SIGINT alone, as it must under nohup. Run the suite in the foreground.)
        await using var controller = RealProcess.Start("smp-controller", "--urls", url, "--data", data, "--time-scale", "0.25");
        await controller.WaitForLineAsync(l => l.Contains("Now listening", StringComparison.Ordinal), Timeout);
        using var channel = GrpcChannel.ForAddress(url);
        var machineService = new MachineService.MachineServiceClient(channel);

        await using var home = RealProcess.Start("smp", "machine", "home", "--controller", url);
        // The console shows its stop key once Ctrl+C is its own: press it.
        await home.WaitForLineAsync(l => l.Contains("homing: Ctrl+C stops it", StringComparison.Ordinal), Timeout);
        home.Interrupt();

        var exitCode = await home.ExitCodeAsync(Timeout);
        Assert.True(exitCode == 3, $"smp machine home exited {exitCode}, not 3; stderr:\n{home.Stderr}");
        Assert.Contains("homing stopped by Ctrl+C: gantry ", home.Stderr, StringComparison.Ordinal);
        Assert.Contains("NOT homed", home.Stderr, StringComparison.Ordinal);
        var status = await machineService.GetStatusAsync(new GetMachineStatusRequest(), deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.NotEqual("Home", status.State);
        Assert.False(status.Homed);

        controller.Terminate();
        Assert.Equal(0, await controller.ExitCodeAsync(Timeout));
    }

    [Fact]
    public async Task Pressing_e_during_homing_in_a_terminal_is_an_emergency_stop_and_exits_3_with_the_stop_steps()
    {
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        var data = Directory.CreateTempSubdirectory("smp-e2e-").FullName;
        await using var controller = RealProcess.Start("smp-controller", "--urls", url, "--data", data, "--time-scale", "1");
        await controller.WaitForLineAsync(l => l.Contains("Now listening", StringComparison.Ordinal), Timeout);

        await using var home = RealProcess.StartInTerminal("smp", "machine", "home", "--controller", url);
        await home.WaitForLineAsync(l => l.Contains("homing: e / Esc = EMERGENCY STOP", StringComparison.Ordinal), Timeout);
        home.Press("e");

        Assert.Equal(3, await home.ExitCodeAsync(Timeout));
        var output = home.Stdout + "\n" + home.Stderr;
        Assert.Contains("EMERGENCY STOP (e key)", output, StringComparison.Ordinal);
        Assert.Contains("emergency stop during homing", output, StringComparison.Ordinal);
        using var channel = GrpcChannel.ForAddress(url);
        var safety = await new SafetyService.SafetyServiceClient(channel).GetSafetyStatusAsync(new GetSafetyStatusRequest(), deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.True(safety.EstopLatched);
        Assert.Contains("e key", safety.EstopSource, StringComparison.Ordinal);

        controller.Terminate();
        Assert.Equal(0, await controller.ExitCodeAsync(Timeout));
    }

    /// <summary>
    /// <c>smp run</c> of a demo plan of <paramref name="dots"/> dots (written into <paramref name="data"/>) with
    /// --no-ui --json, once it says the session is RUNNING: the console process and the session id.
    /// </summary>
    private static async Task<(RealProcess Run, string SessionId)> StartRunAsync(string url, string data, int dots, int seed)
    {
        var plan = Path.Combine(data, $"plan-{dots}.json");
        await File.WriteAllTextAsync(plan, Google.Protobuf.JsonFormatter.Default.Format(SmpRobot.Controller.Plans.DemoPlanGenerator.Generate(dots, seed)));
        var run = RealProcess.Start("smp", "run", plan, "--no-ui", "--json", "--controller", url);
        try
        {
            var started = await run.WaitForLineAsync(l => l.Contains("started", StringComparison.Ordinal) && l.Contains("RUNNING", StringComparison.Ordinal), Timeout);
            return (run, started.Split(' ').First(w => w.StartsWith("s-", StringComparison.Ordinal)));
        }
        catch
        {
            await run.DisposeAsync();
            throw;
        }
    }

    [Fact]
    public async Task Estop_from_a_second_terminal_stops_a_running_session()
    {
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        var data = Directory.CreateTempSubdirectory("smp-e2e-").FullName;
        await using var controller = RealProcess.Start("smp-controller", "--urls", url, "--data", data, "--time-scale", "20");
        await controller.WaitForLineAsync(l => l.Contains("Now listening", StringComparison.Ordinal), Timeout);
        var started = await StartRunAsync(url, data, 150, 13);
        await using var run = started.Run;
        var sessionId = started.SessionId;

        await using var estop = RealProcess.Start("smp", "estop", "--json", "--controller", url);
        Assert.Equal(0, await estop.ExitCodeAsync(Timeout));
        var status = JsonDocument.Parse(estop.Stdout).RootElement;
        Assert.True(status.GetProperty("estopLatched").GetBoolean());

        Assert.Equal(3, await run.ExitCodeAsync(Timeout));
        var result = JsonDocument.Parse(run.Stdout).RootElement;
        Assert.Equal("EMERGENCY_STOPPED", result.GetProperty("state").GetString());
        var dots = result.GetProperty("dots");
        Assert.Equal(dots.GetProperty("total").GetInt32(), dots.GetProperty("placed").GetInt32() + dots.GetProperty("pending").GetInt32() + dots.GetProperty("inDoubt").GetInt32());

        await using var reset = RealProcess.Start("smp", "estop", "--reset", "--json", "--controller", url);
        Assert.Equal(0, await reset.ExitCodeAsync(Timeout));
        Assert.False(JsonDocument.Parse(reset.Stdout).RootElement.GetProperty("estopLatched").GetBoolean());

        // After the e-stop: resolve what is in doubt, home, and resume with this console supervising to the end.
        if (dots.GetProperty("inDoubt").GetInt32() > 0)
        {
            await using var resolve = RealProcess.Start("smp", "session", "resolve", sessionId, "--all-in-doubt", "--as", "skip", "--controller", url);
            Assert.Equal(0, await resolve.ExitCodeAsync(Timeout));
        }
        await using var home = RealProcess.Start("smp", "machine", "home", "--controller", url);
        Assert.Equal(0, await home.ExitCodeAsync(Timeout));
        await using var resume = RealProcess.Start("smp", "session", "resume", sessionId, "--no-ui", "--json", "--controller", url);
        Assert.Equal(0, await resume.ExitCodeAsync(Timeout));
        var resumed = JsonDocument.Parse(resume.Stdout).RootElement;
        Assert.Equal("COMPLETED", resumed.GetProperty("state").GetString());
        var after = resumed.GetProperty("dots");
        Assert.Equal(150, after.GetProperty("placed").GetInt32() + after.GetProperty("skipped").GetInt32());

        controller.Terminate();
        Assert.Equal(0, await controller.ExitCodeAsync(Timeout));
    }

    [Fact]
    public async Task Watch_in_a_terminal_shows_an_estopped_session_with_what_blocks_its_resume_and_space_resumes_it_to_completed()
    {
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        var data = Directory.CreateTempSubdirectory("smp-e2e-").FullName;
        await using var controller = RealProcess.Start("smp-controller", "--urls", url, "--data", data, "--time-scale", "20");
        await controller.WaitForLineAsync(l => l.Contains("Now listening", StringComparison.Ordinal), Timeout);
        var started = await StartRunAsync(url, data, 60, 14);
        await using var run = started.Run;
        var sessionId = started.SessionId;
        await using (var estop = RealProcess.Start("smp", "estop", "--controller", url))
        {
            Assert.Equal(0, await estop.ExitCodeAsync(Timeout));
        }
        Assert.Equal(3, await run.ExitCodeAsync(Timeout));
        var stoppedDots = JsonDocument.Parse(run.Stdout).RootElement.GetProperty("dots");

        // The watch stays on the stopped session and says what still refuses a resume, measured as it changes.
        await using var watch = RealProcess.StartInTerminal("smp", "watch", sessionId, "--controller", url);
        await watch.WaitForLineAsync(l => l.Contains("Resume", StringComparison.Ordinal) && l.Contains("not yet:", StringComparison.Ordinal), Timeout);
        await using (var reset = RealProcess.Start("smp", "estop", "--reset", "--controller", url))
        {
            Assert.Equal(0, await reset.ExitCodeAsync(Timeout));
        }
        if (stoppedDots.GetProperty("inDoubt").GetInt32() > 0)
        {
            await using var resolve = RealProcess.Start("smp", "session", "resolve", sessionId, "--all-in-doubt", "--as", "skip", "--controller", url);
            Assert.Equal(0, await resolve.ExitCodeAsync(Timeout));
        }
        await using (var home = RealProcess.Start("smp", "machine", "home", "--controller", url))
        {
            Assert.Equal(0, await home.ExitCodeAsync(Timeout));
        }
        await watch.WaitForLineAsync(l => l.Contains("ready: press space to resume", StringComparison.Ordinal), Timeout);
        watch.Press(" ");

        Assert.Equal(0, await watch.ExitCodeAsync(Timeout));
        Assert.Contains("State     COMPLETED", watch.Stdout, StringComparison.Ordinal);
        using var channel = GrpcChannel.ForAddress(url);
        var done = await new SessionService.SessionServiceClient(channel).GetAsync(new SessionRef { SessionId = sessionId }, deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.Equal(SessionState.Completed, done.State);
        Assert.Equal(60, done.Dots.Placed + done.Dots.Skipped);

        controller.Terminate();
        Assert.Equal(0, await controller.ExitCodeAsync(Timeout));
    }

    [Fact]
    public async Task A_crashed_controller_restarts_with_every_dot_known_and_never_redoes_a_dot_in_doubt()
    {
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        var data = Directory.CreateTempSubdirectory("smp-e2e-").FullName;
        string sessionId;
        await using (var controller = RealProcess.Start("smp-controller", "--urls", url, "--data", data, "--time-scale", "20"))
        {
            await controller.WaitForLineAsync(l => l.Contains("Now listening", StringComparison.Ordinal), Timeout);
            var started = await StartRunAsync(url, data, 80, 12);
            await using var run = started.Run;
            sessionId = started.SessionId;
            using var channel = GrpcChannel.ForAddress(url);
            var sessions = new SessionService.SessionServiceClient(channel);
            using var cts = new CancellationTokenSource(Timeout);
            using var watch = sessions.Watch(new WatchSessionRequest { SessionId = sessionId }, cancellationToken: cts.Token);
            while (await watch.ResponseStream.MoveNext(cts.Token) && watch.ResponseStream.Current.Session.Dots.Placed < 10)
            {
            }
            controller.Crash();
            await controller.ExitCodeAsync(Timeout);
            Assert.Equal(1, await run.ExitCodeAsync(Timeout)); // the console lost its controller
            // … and says so in plain words, with the hard-wired e-stop and the way back.
            Assert.Contains($"CONTACT WITH THE CONTROLLER LOST during session {sessionId}", run.Stderr, StringComparison.Ordinal);
            Assert.Contains("PRESS THE HARD-WIRED E-STOP", run.Stderr, StringComparison.Ordinal);
            Assert.Contains($"smp session resume {sessionId}", run.Stderr, StringComparison.Ordinal);
        }

        await using var restarted = RealProcess.Start("smp-controller", "--urls", url, "--data", data, "--time-scale", "20");
        await restarted.WaitForLineAsync(l => l.Contains("Now listening", StringComparison.Ordinal), Timeout);
        await using var show = RealProcess.Start("smp", "session", "show", sessionId, "--json", "--controller", url);
        Assert.Equal(0, await show.ExitCodeAsync(Timeout));
        var s = JsonDocument.Parse(show.Stdout).RootElement;
        Assert.Equal("FAULTED", s.GetProperty("state").GetString());
        var dots = s.GetProperty("dots");
        Assert.Equal(0, dots.GetProperty("commanded").GetInt32());
        Assert.Equal(dots.GetProperty("total").GetInt32(), dots.GetProperty("placed").GetInt32() + dots.GetProperty("pending").GetInt32() + dots.GetProperty("inDoubt").GetInt32());
        Assert.True(dots.GetProperty("placed").GetInt32() >= 10);

        if (dots.GetProperty("inDoubt").GetInt32() > 0)
        {
            // A dot that may have been placed is never redone by itself: resuming is refused until the operator decides.
            await using var refused = RealProcess.Start("smp", "session", "resume", sessionId, "--no-ui", "--controller", url);
            Assert.Equal(1, await refused.ExitCodeAsync(Timeout));
            Assert.Contains("in doubt", refused.Stderr + refused.Stdout);
            // The operator looked at the skin: pigment there, the dot counts as placed.
            await using var resolve = RealProcess.Start("smp", "session", "resolve", sessionId, "--all-in-doubt", "--as", "placed", "--controller", url);
            Assert.Equal(0, await resolve.ExitCodeAsync(Timeout));
        }

        // The way forward after a crash: home, then resume with this console supervising to the end.
        await using var home = RealProcess.Start("smp", "machine", "home", "--controller", url);
        Assert.Equal(0, await home.ExitCodeAsync(Timeout));
        await using var resume = RealProcess.Start("smp", "session", "resume", sessionId, "--no-ui", "--json", "--controller", url);
        Assert.Equal(0, await resume.ExitCodeAsync(Timeout));
        var resumed = JsonDocument.Parse(resume.Stdout).RootElement;
        Assert.Equal("COMPLETED", resumed.GetProperty("state").GetString());
        Assert.Equal(80, resumed.GetProperty("dots").GetProperty("placed").GetInt32());
        restarted.Terminate();
        Assert.Equal(0, await restarted.ExitCodeAsync(Timeout));
    }

    [Fact]
    public async Task Plan_check_rejects_bad_files_with_exit_code_2()
    {
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        var data = Directory.CreateTempSubdirectory("smp-e2e-").FullName;
        await using var controller = RealProcess.Start("smp-controller", "--urls", url, "--data", data);
        await controller.WaitForLineAsync(l => l.Contains("Now listening", StringComparison.Ordinal), Timeout);

        var bad = Path.Combine(TestProfiles.RepoRoot, "hardware", "plans", "examples", "bad-depth.json");
        await using var check = RealProcess.Start("smp", "plan", "check", bad, "--controller", url);
        Assert.Equal(2, await check.ExitCodeAsync(Timeout));
        Assert.Contains("depth-range", check.Stdout + check.Stderr);
        Assert.DoesNotContain("   at ", check.Stdout + check.Stderr);

        var huge = Path.Combine(data, "huge.json");
        await using (var f = File.Create(huge)) f.SetLength(1L << 30);
        await using var hugeCheck = RealProcess.Start("smp", "plan", "check", huge, "--json", "--controller", url);
        Assert.Equal(2, await hugeCheck.ExitCodeAsync(Timeout));
        Assert.Equal(2, JsonDocument.Parse(hugeCheck.Stdout).RootElement.GetProperty("exitCode").GetInt32());

        var good = Path.Combine(TestProfiles.RepoRoot, "hardware", "plans", "demo-crown.json");
        await using var goodCheck = RealProcess.Start("smp", "plan", "check", good, "--json", "--controller", url);
        Assert.Equal(0, await goodCheck.ExitCodeAsync(Timeout));
        Assert.Equal(SmpRobot.Contracts.V1.Plan.Parser.ParseJson(await File.ReadAllTextAsync(good)).Dots.Count, JsonDocument.Parse(goodCheck.Stdout).RootElement.GetProperty("dotCount").GetInt32());
        controller.Terminate();
        await controller.ExitCodeAsync(Timeout);
    }
}

/// <summary>The console tells the truth about an e-stop: the real demo in a terminal, the real calibration and homing.</summary>
[Collection(ControllerCollection.Name)]
public class ConsoleTruthEndToEndTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task Pressing_e_in_the_demo_stops_it_and_the_summary_says_latched_with_the_stop_steps()
    {
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        var tmp = Directory.CreateTempSubdirectory("smp-e2e-demo-tmp-");
        await using var demo = RealProcess.StartInTerminalWith(DemoFolderEndToEndTests.TempDirEnvironment(tmp.FullName), "smp", "demo", "--dots", "400", "--camera", "none", "--time-scale", "20", "--controller", url);
        // The live view shows dots being placed: press e mid-session.
        await demo.WaitForLineAsync(l => l.Contains(" placed (", StringComparison.Ordinal) && !l.Contains(" 0/400", StringComparison.Ordinal), Timeout);
        demo.Press("e");
        Assert.Equal(3, await demo.ExitCodeAsync(Timeout));

        var output = demo.Stdout + "\n" + demo.Stderr;
        Assert.DoesNotContain("FAILED", output, StringComparison.Ordinal);
        Assert.DoesNotContain("NOT CONFIRMED", output, StringComparison.Ordinal);
        Assert.Contains("State     EMERGENCY_STOPPED", output, StringComparison.Ordinal);
        Assert.Contains("E-stop    LATCHED by smp console (e key)", output, StringComparison.Ordinal);
        Assert.Contains("Stop      feed-hold, needle-off, queue-flushed, retracted", output, StringComparison.Ordinal);
        // The machine as measured after the stop: needle drive off.
        Assert.Contains("Needle    off;", output, StringComparison.Ordinal);
        // The terminal bell rang as the session started needing the operator.
        Assert.Contains('\a', output);
        // The demo keeps its data folder and names the controller line that reaches it again.
        var folder = Assert.Single(Directory.GetDirectories(tmp.FullName, "smp-demo-*"));
        Assert.Contains($"kept the demo's data folder {folder} (session ", output, StringComparison.Ordinal);
        Assert.Contains($" --gantry sim --camera none --time-scale 20 --data {folder} --urls {url}", output, StringComparison.Ordinal);
        Assert.Contains("smp session resume ", output, StringComparison.Ordinal);
        tmp.Delete(recursive: true);
    }

    [Fact]
    public async Task In_a_terminal_ctrl_c_during_a_calibration_and_a_jog_and_e_during_a_jog_stop_the_gantry_at_once_and_exit_3()
    {
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        var data = Directory.CreateTempSubdirectory("smp-e2e-keys-").FullName;
        var record = Path.Combine(data, "record.json");
        var controller = RealProcess.Start("smp-controller", "--urls", url, "--data", data, "--time-scale", "5", "--camera", "none", "--record", record);
        await using var _ = controller;
        await controller.WaitForLineAsync(l => l.Contains("Now listening", StringComparison.Ordinal), Timeout);
        using var channel = GrpcChannel.ForAddress(url);
        var machine = new MachineService.MachineServiceClient(channel);
        await using (var home = RealProcess.Start("smp", "machine", "home", "--controller", url)) Assert.Equal(0, await home.ExitCodeAsync(Timeout));

        // Ctrl+C (a key in the terminal's raw mode) once two stops are done: stopped, exit 3, nothing stored.
        await using (var calibrate = RealProcess.StartInTerminal("smp", "calibrate", "gantry", "--points", "25", "--controller", url))
        {
            await calibrate.WaitForLineAsync(l => l.Contains("calibration: e / Esc = EMERGENCY STOP, Ctrl+C stops it", StringComparison.Ordinal), Timeout);
            await WaitForActivityAsync(machine, a => a.Name == "gantry calibration" && a.StepsDone >= 2);
            calibrate.Press("\u0003");
            Assert.Equal(3, await calibrate.ExitCodeAsync(Timeout));
            Assert.Contains("calibration stopped by Ctrl+C: gantry ", calibrate.Stdout + calibrate.Stderr, StringComparison.Ordinal);
        }
        // The monotonic clock is the same in every process here: the simulator's record of stop bytes compares with it.
        var calibrationReported = System.Diagnostics.Stopwatch.GetTimestamp();
        var calibrations = await new CalibrationService.CalibrationServiceClient(channel).ListCalibrationsAsync(new ListCalibrationsRequest(), deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.DoesNotContain(calibrations.Calibrations, c => c.Kind == CalibrationKind.Gantry);

        // A long jog: Ctrl+C, then e (the emergency stop).
        foreach (var (key, expected) in new[] { ("\u0003", "the jog stopped by Ctrl+C"), ("e", "emergency stop during the jog") })
        {
            await using var jog = RealProcess.StartInTerminal("smp", "machine", "jog", "--dx", "-100", "--feed", "300", "--controller", url);
            await jog.WaitForLineAsync(l => l.Contains("the jog: e / Esc = EMERGENCY STOP", StringComparison.Ordinal), Timeout);
            await WaitForActivityAsync(machine, a => a.Name == "jog");
            jog.Press(key);
            Assert.Equal(3, await jog.ExitCodeAsync(Timeout));
            Assert.Contains(expected, jog.Stdout + jog.Stderr, StringComparison.Ordinal);
        }

        controller.Terminate();
        Assert.Equal(0, await controller.ExitCodeAsync(Timeout));
        // What the gantry physically did: after each stop byte, the motion under way ends within the stop bound and no
        // new move starts but a lift of Z (the needle goes up, never sideways or down).
        var truth = SmpRobot.Controller.Gantry.Simulation.SimulationRecord.Read(record);
        var stopBytes = truth.Realtime.Where(r => r.Command is (byte)'!' or 0x85 or 0x18).ToList();
        // The console reported the calibration stopped only once the controller's stop was done: no stop byte came after its report but the jogs' own.
        var firstJogStart = truth.Motions.First(m => m.Kind == SmpRobot.Controller.Gantry.Simulation.SimMotionKind.Jog).StartSimSeconds;
        Assert.DoesNotContain(stopBytes, r => r.Timestamp > calibrationReported && r.SimSeconds < firstJogStart);
        var stops = stopBytes.Select(r => r.SimSeconds).ToList();
        Assert.True(stops.Count >= 3, $"{stops.Count} stop bytes for three stops");
        const double stopBoundSimSeconds = 0.5;
        foreach (var t in stops)
        {
            Assert.All(truth.Motions.Where(m => m.StartSimSeconds < t && m.EndSimSeconds > t), m =>
                Assert.True(m.EndSimSeconds <= t + stopBoundSimSeconds, $"a {m.Kind} move ran on {m.EndSimSeconds - t:0.000} s after the stop byte"));
            Assert.All(truth.Motions.Where(m => m.StartSimSeconds >= t && m.StartSimSeconds < t + stopBoundSimSeconds && m.Kind != SmpRobot.Controller.Gantry.Simulation.SimMotionKind.Dwell), m =>
                Assert.True(m.To.X == m.From.X && m.To.Y == m.From.Y && m.To.Z >= m.From.Z, $"a {m.Kind} move from {m.From} to {m.To} began {m.StartSimSeconds - t:0.000} s after the stop byte"));
        }
    }

    private static async Task WaitForActivityAsync(MachineService.MachineServiceClient machine, Func<SmpRobot.Contracts.V1.MachineActivity, bool> until)
    {
        using var cts = new CancellationTokenSource(Timeout);
        using var watch = machine.WatchStatus(new WatchMachineStatusRequest(), cancellationToken: cts.Token);
        while (await watch.ResponseStream.MoveNext(cts.Token))
        {
            if (watch.ResponseStream.Current.Activity is { } a && until(a)) return;
        }
        throw new InvalidOperationException("the machine status stream ended before the activity was seen");
    }

    [Fact]
    public async Task An_estop_during_a_gantry_calibration_exits_3_and_says_so_with_the_stop_steps()
    {
        var url = $"http://127.0.0.1:{RealProcess.FreePort()}";
        var data = Directory.CreateTempSubdirectory("smp-e2e-cal-").FullName;
        await using var controller = RealProcess.Start("smp-controller", "--urls", url, "--data", data, "--time-scale", "5", "--camera", "none");
        await controller.WaitForLineAsync(l => l.Contains("Now listening", StringComparison.Ordinal), Timeout);
        await using (var home = RealProcess.Start("smp", "machine", "home", "--controller", url)) Assert.Equal(0, await home.ExitCodeAsync(Timeout));

        await using var calibrate = RealProcess.Start("smp", "calibrate", "gantry", "--points", "25", "--controller", url);
        await calibrate.WaitForLineAsync(l => l.Contains("calibrating:", StringComparison.Ordinal), Timeout);
        await using (var estop = RealProcess.Start("smp", "estop", "--controller", url)) Assert.Equal(0, await estop.ExitCodeAsync(Timeout));

        Assert.Equal(3, await calibrate.ExitCodeAsync(Timeout));
        Assert.Contains("emergency stop during calibration", calibrate.Stderr, StringComparison.Ordinal);
        Assert.Contains("feed-hold, needle-off, queue-flushed, retracted", calibrate.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("flushed by soft reset", calibrate.Stderr, StringComparison.Ordinal);

        // Again with the e key in the calibrating console's own terminal.
        await using (var reset = RealProcess.Start("smp", "estop", "--reset", "--controller", url)) Assert.Equal(0, await reset.ExitCodeAsync(Timeout));
        await using (var home = RealProcess.Start("smp", "machine", "home", "--controller", url)) Assert.Equal(0, await home.ExitCodeAsync(Timeout));
        await using var inTerminal = RealProcess.StartInTerminal("smp", "calibrate", "gantry", "--points", "25", "--controller", url);
        await inTerminal.WaitForLineAsync(l => l.Contains("calibration: e / Esc = EMERGENCY STOP", StringComparison.Ordinal), Timeout);
        inTerminal.Press("e");
        Assert.Equal(3, await inTerminal.ExitCodeAsync(Timeout));
        var output = inTerminal.Stdout + "\n" + inTerminal.Stderr;
        Assert.Contains("EMERGENCY STOP (e key)", output, StringComparison.Ordinal);
        Assert.Contains("emergency stop during calibration", output, StringComparison.Ordinal);
        controller.Terminate();
        Assert.Equal(0, await controller.ExitCodeAsync(Timeout));
    }
}
