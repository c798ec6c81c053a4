using SmpRobot.Operator.Cli;

namespace SmpRobot.Tests.Cli;

public sealed class LiveViewTests : IDisposable
{
    private readonly DirectoryInfo dir = Directory.CreateTempSubdirectory("smp-cli-live-");

    public void Dispose() => dir.Delete(recursive: true);

    private sealed class ScriptedKeys : IKeyInput
    {
        public int RawModeEntered;

        public IDisposable EnterRawMode()
        {
            Interlocked.Increment(ref RawModeEntered);
            return new NoOp();
        }

        public bool TryReadKey(out ConsoleKeyInfo key)
        {
            key = default;
            return false;
        }

        private sealed class NoOp : IDisposable
        {
            public void Dispose() { }
        }
    }

    [Fact]
    public async Task Run_on_a_terminal_uses_the_live_view_with_keys_and_ends_with_the_summary()
    {
        await using var fake = await FakeController.StartAsync();
        var plan = Path.Combine(dir.FullName, "plan.json");
        await File.WriteAllTextAsync(plan, PlanFileTests.PlanJson(6));
        var keys = new ScriptedKeys();
        var host = new CliHost
        {
            GetEnvironmentVariable = _ => null,
            StdoutIsTerminal = true,
            Keys = keys,
            OperatorName = "tester",
        };
        var (code, stdout, stderr) = await CliRunner.RunAsync(host, fake.Args("run", plan));
        Assert.Equal(ExitCodes.Success, code);
        Assert.Contains("EMERGENCY STOP", stdout, StringComparison.Ordinal); // key legend in the live view
        Assert.Contains("6 placed, 0 skipped, 0 pending, 0 in doubt of 6", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("dots/s ETA", stderr, StringComparison.Ordinal); // no plain progress lines with the live view
        Assert.Equal(1, keys.RawModeEntered);
    }

    [Fact]
    public void The_gantry_state_shown_is_the_newest_measured_one_whichever_stream_brought_it()
    {
        using var stderr = new StringWriter();
        var ctx = new CommandContext(TextWriter.Null, stderr, CliRunner.IsolatedHost(), json: false, new Uri("http://127.0.0.1:9"));
        using var conn = ctx.Connect();
        var follower = new SessionFollower(ctx, conn, new FollowOptions(LiveView: false, InterruptAlwaysStops: true));
        var t0 = DateTimeOffset.UtcNow;
        SmpRobot.Contracts.V1.MachineStatus At(string state, double seconds) =>
            new() { Connected = true, State = state, At = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(t0.AddSeconds(seconds)) };
        SmpRobot.Contracts.V1.SessionEvent Event(SmpRobot.Contracts.V1.MachineStatus m) =>
            new() { Session = new SmpRobot.Contracts.V1.Session { Id = "s-1", State = SmpRobot.Contracts.V1.SessionState.Running }, Machine = m };

        follower.Apply(Event(At("Idle", 0)));
        follower.TakeMachine(At("Run", 0.1));           // the machine stream, newer: shown
        Assert.Equal("Run", follower.ShownMachine?.State);
        follower.Apply(Event(At("Idle", 0.05)));        // a session event built before it: not shown
        Assert.Equal("Run", follower.ShownMachine?.State);
        follower.TakeMachine(At("Hold:0", 0.08));       // a late stream message, older: not shown
        Assert.Equal("Run", follower.ShownMachine?.State);
        follower.Apply(Event(At("Idle", 0.2)));         // newer again
        Assert.Equal("Idle", follower.ShownMachine?.State);
    }

    [Fact]
    public async Task The_estop_key_path_goes_to_the_safety_service_with_the_console_as_source()
    {
        await using var fake = await FakeController.StartAsync();
        using var stderr = new StringWriter();
        var ctx = new CommandContext(TextWriter.Null, stderr, FakeController.Host(), json: false, fake.Address);
        using var conn = ctx.Connect();
        var follower = new SessionFollower(ctx, conn, new FollowOptions(LiveView: false, InterruptAlwaysStops: true));

        await follower.EmergencyStopAsync("e key").WaitAsync(TimeSpan.FromSeconds(10));

        var request = Assert.Single(fake.State.EmergencyStops);
        Assert.Equal("smp console (e key)", request.Source);
        Assert.Contains("EMERGENCY STOP latched (feed-hold, needle-off, queue-flushed, retracted)", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failed_estop_tells_the_operator_to_use_the_hard_wired_button()
    {
        using var stderr = new StringWriter();
        var ctx = new CommandContext(TextWriter.Null, stderr, CliRunner.IsolatedHost(), json: false, new Uri("http://127.0.0.1:9"));
        using var conn = ctx.Connect();
        var follower = new SessionFollower(ctx, conn, new FollowOptions(LiveView: false, InterruptAlwaysStops: true));

        await follower.EmergencyStopAsync("Esc key").WaitAsync(TimeSpan.FromSeconds(15));

        Assert.Contains("E-STOP REQUEST FAILED", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("USE THE HARD-WIRED E-STOP", stderr.ToString(), StringComparison.Ordinal);
    }
}
