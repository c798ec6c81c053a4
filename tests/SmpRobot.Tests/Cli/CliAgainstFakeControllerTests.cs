using System.Text.Json.Nodes;
using SmpRobot.Contracts.V1;
using SmpRobot.Operator.Cli;

namespace SmpRobot.Tests.Cli;

/// <summary>The CLI end to end over real gRPC (h2c) against a scripted controller.</summary>
public sealed class CliAgainstFakeControllerTests : IDisposable
{
    private readonly DirectoryInfo dir = Directory.CreateTempSubdirectory("smp-cli-fake-");

    public void Dispose() => dir.Delete(recursive: true);

    private string WritePlan(string json)
    {
        var path = Path.Combine(dir.FullName, "plan.json");
        File.WriteAllText(path, json);
        return path;
    }

    private static JsonObject SingleJsonObject(string stdout)
    {
        // Exactly one JSON object and nothing else on stdout.
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        return JsonNode.Parse(lines[0])!.AsObject();
    }

    [Fact]
    public async Task Run_json_prints_one_session_object_and_exits_0_on_completion()
    {
        await using var fake = await FakeController.StartAsync(new FakeState { Homed = false });
        var plan = WritePlan(PlanFileTests.PlanJson(10));
        var (code, stdout, stderr) = await CliRunner.RunAsync(FakeController.Host(), fake.Args("run", plan, "--json"));

        Assert.Equal(ExitCodes.Success, code);
        var obj = SingleJsonObject(stdout);
        Assert.Equal("s-1", (string)obj["sessionId"]!);
        Assert.Equal("COMPLETED", (string)obj["state"]!);
        Assert.Equal("", (string)obj["reason"]!);
        var dots = obj["dots"]!.AsObject();
        Assert.Equal(10, (int)dots["total"]!);
        Assert.Equal(10, (int)dots["placed"]!);
        foreach (var key in new[] { "skipped", "pending", "inDoubt" }) Assert.True(dots.ContainsKey(key), key);
        Assert.Equal(12.5, (double)obj["elapsedSeconds"]!);
        Assert.Equal(10.0, (double)obj["kinematicSeconds"]!);
        Assert.Equal(0.8, (double)obj["dotsPerSecond"]!, 6);
        Assert.Equal(0, (int)obj["exitCode"]!);
        Assert.All(obj.Select(p => p.Key), k => Assert.True(char.IsLower(k[0]), k + " is camelCase"));

        // Homed first because the machine was not, and said so; the heartbeat was live before Start.
        Assert.Equal(1, fake.State.HomeCalls);
        Assert.Contains("not homed", stderr, StringComparison.Ordinal);
        Assert.True(fake.State.HeartbeatsAtStart >= 1, "Start came before any operator heartbeat");
        Assert.Equal(await File.ReadAllTextAsync(plan), fake.State.CreatedPlanJson);
    }

    [Fact]
    public async Task Run_ending_emergency_stopped_exits_3_and_summary_names_the_resolve_command()
    {
        var state = new FakeState { FinalState = SessionState.EmergencyStopped, FinalReason = "e-stop: smp estop" };
        state.InDoubtIds.Add("d3");
        await using var fake = await FakeController.StartAsync(state);
        var plan = WritePlan(PlanFileTests.PlanJson(10));
        var (code, stdout, stderr) = await CliRunner.RunAsync(FakeController.Host(), fake.Args("run", plan, "--no-ui"));

        Assert.Equal(ExitCodes.Stopped, code);
        Assert.Contains("EMERGENCY_STOPPED", stdout, StringComparison.Ordinal);
        Assert.Contains("e-stop: smp estop", stdout, StringComparison.Ordinal);
        Assert.Contains("smp session resolve s-1 --dot d3 --as placed", stdout, StringComparison.Ordinal);
        Assert.Contains("RUNNING 5/10 dots", stderr, StringComparison.Ordinal); // plain progress line on stderr
        Assert.Equal(0, fake.State.HomeCalls);
    }

    [Fact]
    public async Task Run_faulted_exits_1_and_refuses_to_start_while_the_estop_is_latched()
    {
        await using var fake = await FakeController.StartAsync(new FakeState { FinalState = SessionState.Faulted, FinalReason = "link lost" });
        var plan = WritePlan(PlanFileTests.PlanJson(4));
        var (code, stdout, _) = await CliRunner.RunAsync(FakeController.Host(), fake.Args("run", plan, "--json"));
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Equal("FAULTED", (string)SingleJsonObject(stdout)["state"]!);

        fake.State.EstopLatched = true;
        fake.State.CreatedPlanJson = null;
        var (latchedCode, _, stderr) = await CliRunner.RunAsync(FakeController.Host(), fake.Args("run", plan));
        Assert.Equal(ExitCodes.Failure, latchedCode);
        Assert.Contains("smp estop --reset", stderr, StringComparison.Ordinal);
        Assert.Null(fake.State.CreatedPlanJson);
    }

    [Fact]
    public async Task Plan_check_prints_every_violation_from_the_trailer_and_exits_2()
    {
        await using var fake = await FakeController.StartAsync();
        var plan = WritePlan("""{"name":"bad","dots":[]}""");

        var (code, stdout, _) = await CliRunner.RunAsync(FakeController.Host(), fake.Args("plan", "check", plan));
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("dot d1  depth-range  depth 3 mm is outside 0.5..2 mm", stdout, StringComparison.Ordinal);
        Assert.Contains("dot d2  min-spacing  0.2 mm from d1 (min 0.5 mm)", stdout, StringComparison.Ordinal);
        Assert.Contains("3 violations (first 2 shown)", stdout, StringComparison.Ordinal);

        var (jsonCode, jsonOut, stderr) = await CliRunner.RunAsync(FakeController.Host(), fake.Args("plan", "check", plan, "--json"));
        Assert.Equal(ExitCodes.Usage, jsonCode);
        var obj = SingleJsonObject(jsonOut);
        Assert.Equal(2, (int)obj["exitCode"]!);
        Assert.Contains("invalid", (string)obj["error"]!, StringComparison.Ordinal);
        Assert.Equal(3, (int)obj["totalViolations"]!);
        var first = obj["violations"]!.AsArray()[0]!;
        Assert.Equal("d1", (string)first["dotId"]!);
        Assert.Equal("depth-range", (string)first["rule"]!);
        Assert.Contains("dot d1  depth-range", stderr, StringComparison.Ordinal); // lines went to stderr with --json
    }

    [Fact]
    public async Task Plan_check_success_reports_dot_count_and_kinematic_time()
    {
        await using var fake = await FakeController.StartAsync();
        var plan = WritePlan(PlanFileTests.PlanJson(7));
        var (code, stdout, _) = await CliRunner.RunAsync(FakeController.Host(), fake.Args("plan", "check", plan));
        Assert.Equal(ExitCodes.Success, code);
        Assert.Contains("7 dots", stdout, StringComparison.Ordinal);
        Assert.Contains("1 min 16 s", stdout, StringComparison.Ordinal);

        var (_, jsonOut, _) = await CliRunner.RunAsync(FakeController.Host(), fake.Args("plan", "check", plan, "--json"));
        var obj = SingleJsonObject(jsonOut);
        Assert.Equal(7, (int)obj["dotCount"]!);
        Assert.Equal(75.5, (double)obj["estimatedKinematicSeconds"]!);
    }

    [Fact]
    public async Task Estop_and_reset_print_the_safety_status()
    {
        await using var fake = await FakeController.StartAsync();
        var (code, stdout, _) = await CliRunner.RunAsync(FakeController.Host(), fake.Args("estop", "--reason", "smoke test", "--json"));
        Assert.Equal(ExitCodes.Success, code);
        var obj = SingleJsonObject(stdout);
        Assert.True((bool)obj["estopLatched"]!);
        Assert.Equal("smp estop", fake.State.EmergencyStops.Single().Source);
        Assert.Equal("smoke test", fake.State.EmergencyStops.Single().Reason);

        var (resetCode, resetOut, _) = await CliRunner.RunAsync(FakeController.Host(), fake.Args("estop", "--reset"));
        Assert.Equal(ExitCodes.Success, resetCode);
        Assert.Contains("E-stop    clear", resetOut, StringComparison.Ordinal);
        Assert.False(fake.State.EstopLatched);
    }

    [Fact]
    public async Task A_session_held_for_the_operator_under_no_ui_ends_the_console_with_exit_3_and_the_reason()
    {
        await using var fake = await FakeController.StartAsync();
        fake.State.FinalState = SessionState.Paused;
        fake.State.FinalReason = "held: tracking did not settle within 120 s (head pose is stale)";
        var plan = Path.Combine(Directory.CreateTempSubdirectory("smp-held-").FullName, "plan.json");
        await File.WriteAllTextAsync(plan, "{\"name\":\"p\",\"units\":\"mm\",\"dots\":[{\"id\":\"d1\",\"xMm\":0,\"yMm\":0,\"zMm\":1,\"depthMm\":1,\"dwellMs\":200,\"pigmentId\":\"charcoal-1\"}]}");
        var (code, stdout, stderr) = await CliRunner.RunAsync(FakeController.Host(), fake.Args("run", plan, "--no-ui"));
        Assert.Equal(ExitCodes.Stopped, code);
        Assert.Contains("session held for the operator (held: tracking did not settle within 120 s", stdout + stderr, StringComparison.Ordinal);

        // A pause the operator asked for is not a hold: whoever paused it resumes it.
        Assert.True(SessionFollower.IsHeldForOperator(new Session { State = SessionState.Paused, Reason = "held: x" }));
        Assert.False(SessionFollower.IsHeldForOperator(new Session { State = SessionState.Paused, Reason = "paused by the operator" }));
    }

    [Fact]
    public async Task Sessions_resolve_and_refusals()
    {
        await using var fake = await FakeController.StartAsync();
        var (code, stdout, _) = await CliRunner.RunAsync(FakeController.Host(), fake.Args("sessions"));
        Assert.Equal(ExitCodes.Success, code);
        Assert.Contains("s-1", stdout, StringComparison.Ordinal);
        Assert.Contains("COMPLETED", stdout, StringComparison.Ordinal);

        var (resolveCode, _, _) = await CliRunner.RunAsync(FakeController.Host(), fake.Args("session", "resolve", "s-1", "--dot", "d3", "--dot", "d4", "--as", "redo"));
        Assert.Equal(ExitCodes.Success, resolveCode);
        Assert.Equal(["d3", "d4"], fake.State.Resolved!.DotIds);
        Assert.Equal(DotResolution.Redo, fake.State.Resolved.Resolution);
        Assert.Equal("tester", fake.State.Resolved.Operator);

        // FAILED_PRECONDITION: exit 1 with the controller's message.
        var (pauseCode, pauseOut, pauseErr) = await CliRunner.RunAsync(FakeController.Host(), fake.Args("session", "pause", "s-1", "--json"));
        Assert.Equal(ExitCodes.Failure, pauseCode);
        Assert.Contains("session s-1 is not running", pauseErr, StringComparison.Ordinal);
        Assert.Equal("session s-1 is not running", (string)SingleJsonObject(pauseOut)["error"]!);
    }

    [Fact]
    public async Task Unreachable_controller_is_a_clear_exit_1()
    {
        // Port 9 (discard) on loopback: nothing listens in the test environment.
        var (code, stdout, stderr) = await CliRunner.RunAsync("machine", "status", "--controller", "http://127.0.0.1:9", "--json");
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("cannot reach the controller at http://127.0.0.1:9: is smp-controller running?", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        Assert.Equal(1, (int)SingleJsonObject(stdout)["exitCode"]!);
    }
}
