using SmpRobot.Contracts.V1;
using SmpRobot.Operator.Cli;
using Spectre.Console;

namespace SmpRobot.Tests.Cli;

public class SessionViewTests
{
    internal static Session Sample(SessionState state, params string[] inDoubt)
    {
        var s = new Session
        {
            Id = "s-42",
            PlanName = "crown",
            ProfileName = "sim",
            State = state,
            Reason = state == SessionState.Faulted ? "link lost" : "",
            Dots = new DotCounts { Total = 500, Placed = 480, Skipped = 5, Pending = 15 - inDoubt.Length, InDoubt = inDoubt.Length },
            ElapsedSeconds = 250,
            KinematicSeconds = 200,
            DotsPerSecond = 1.92,
            EtaSeconds = 8,
        };
        s.InDoubt.AddRange(inDoubt.Select(id => new DotStatus { DotId = id, State = DotState.InDoubt }));
        return s;
    }

    [Fact]
    public void Summary_states_counts_times_ratio_and_rate()
    {
        var text = SessionView.Summary(Sample(SessionState.Completed));
        Assert.Contains("s-42", text, StringComparison.Ordinal);
        Assert.Contains("COMPLETED", text, StringComparison.Ordinal);
        Assert.Contains("480 placed, 5 skipped, 15 pending, 0 in doubt of 500", text, StringComparison.Ordinal);
        Assert.Contains("machine 4 min 10 s", text, StringComparison.Ordinal);
        Assert.Contains("kinematic 3 min 20 s", text, StringComparison.Ordinal);
        Assert.Contains("1.25x the kinematic bound", text, StringComparison.Ordinal);
        Assert.Contains("1.92 dots/s", text, StringComparison.Ordinal);
        Assert.DoesNotContain("resolve", text, StringComparison.Ordinal);
        Assert.True(text.Split('\n').Length <= 20, "one screen");
    }

    [Fact]
    public void Summary_with_dots_in_doubt_gives_the_exact_resolve_commands()
    {
        var text = SessionView.Summary(Sample(SessionState.Faulted, "d7", "d8"), "--controller http://h:1");
        Assert.Contains("FAULTED", text, StringComparison.Ordinal);
        Assert.Contains("link lost", text, StringComparison.Ordinal);
        Assert.Contains("2 dot(s) IN DOUBT: d7, d8", text, StringComparison.Ordinal);
        foreach (var r in new[] { "placed", "redo", "skip" })
        {
            Assert.Contains($"smp session resolve s-42 --dot d7 --dot d8 --as {r} --controller http://h:1", text, StringComparison.Ordinal);
        }

        var many = Sample(SessionState.Faulted, "a", "b", "c", "d", "e", "f");
        Assert.Contains("smp session resolve s-42 --all-in-doubt --as redo", SessionView.Summary(many), StringComparison.Ordinal);
    }

    [Fact]
    public void Progress_line_has_state_counts_rate_eta_and_gantry()
    {
        var machine = new MachineStatus { State = "Run", NeedleOn = true, Position = new Position { XMm = 1.5, YMm = -2, ZMm = 3.25 } };
        var line = SessionView.ProgressLine(new SessionSnapshot(Sample(SessionState.Running), machine));
        Assert.Equal("RUNNING 480/500 dots (96.0%) 1.92 dots/s ETA 8.0 s | gantry Run x=1.500 y=-2.000 z=3.250 needle ON", line);
    }

    [Fact]
    public void Live_view_shows_everything_the_operator_needs()
    {
        var machine = new MachineStatus { State = "Hold:0", Connected = true, NeedleOn = false, LastAlarm = "ALARM:2 soft limit", Position = new Position { XMm = 10, YMm = 20, ZMm = 5 } };
        var safety = new SafetyStatus { EstopLatched = true, EstopReason = "operator" };
        var snapshot = new SessionSnapshot(Sample(SessionState.Paused), machine, safety, "held: pose stale", "pausing…");
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(writer), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
        console.Profile.Width = 160;
        console.Write(SessionView.Render(snapshot));
        var text = writer.ToString();
        foreach (var expected in new[]
        {
            "480/500 placed (96.0%)", "1.92 dots/s", "ETA 8.0 s", "PAUSED", "Hold:0", "x 10.000 y 20.000 z 5.000 mm",
            "Needle", "LATCHED (operator)", "ALARM:2 soft limit", "held: pose stale", "pausing…", "e / Esc / Ctrl+C = EMERGENCY STOP", "space = pause/resume",
        })
        {
            Assert.Contains(expected, text, StringComparison.Ordinal);
        }
    }

    private static string[] RenderLines(SessionSnapshot snapshot, int terminalWidth)
    {
        var writer = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(writer), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
        console.Profile.Width = terminalWidth;
        console.Write(SessionView.Render(snapshot));
        return writer.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
    }

    [Fact]
    public void The_live_box_keeps_one_width_whatever_its_texts_and_wraps_long_ones()
    {
        var quiet = new SessionSnapshot(Sample(SessionState.Running), new MachineStatus { State = "Run", Connected = true });
        var busy = new SessionSnapshot(Sample(SessionState.Paused), new MachineStatus { State = "Hold:0", Connected = true, LastAlarm = "ALARM:2 soft limit" },
            new SafetyStatus { EstopLatched = true, EstopReason = "operator" }, "held: " + new string('x', 300), "pausing…");
        foreach (var snapshot in new[] { quiet, busy })
        {
            var lines = RenderLines(snapshot, 160);
            Assert.All(lines, l => Assert.Equal(SessionView.LiveViewWidth, l.Length));
        }
        // A narrower terminal: the box takes its width, never more.
        Assert.All(RenderLines(busy, 72), l => Assert.Equal(72, l.Length));
    }

    [Fact]
    public void A_stopped_session_shown_for_resume_names_every_obstacle_with_its_command_and_then_says_ready()
    {
        var faulted = Sample(SessionState.Faulted);
        faulted.Dots.InDoubt = 1;
        var start = new StartReadiness { NeedsHoming = true };
        start.Refusals.Add("the emergency stop is latched: check the patient and the machine, then reset it with smp estop --reset");
        var blocked = ResumeReadiness.Of(faulted, start);
        Assert.False(blocked.Ready);
        Assert.Contains("1 dot(s) in doubt", blocked.Text, StringComparison.Ordinal);
        Assert.Contains($"smp session resolve {faulted.Id} --all-in-doubt", blocked.Text, StringComparison.Ordinal);
        Assert.Contains("smp estop --reset", blocked.Text, StringComparison.Ordinal);
        Assert.Contains("smp machine home", blocked.Text, StringComparison.Ordinal);

        faulted.Dots.InDoubt = 0;
        var ready = ResumeReadiness.Of(faulted, new StartReadiness { Ready = true });
        Assert.True(ready.Ready);
        var text = string.Join("\n", RenderLines(new SessionSnapshot(faulted, new MachineStatus { State = "Idle", Connected = true, Homed = true }) { Resume = ready }, 160));
        Assert.Contains("ready: press space to resume", text, StringComparison.Ordinal);
        Assert.Contains("q / Ctrl+C = stop watching", text, StringComparison.Ordinal);
        Assert.DoesNotContain("e / Esc / Ctrl+C = EMERGENCY STOP", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, 10, "░░░░░░░░░░")]
    [InlineData(5, 10, "█████░░░░░")]
    [InlineData(10, 10, "██████████")]
    [InlineData(3, 0, "░░░░░░░░░░")]
    public void Progress_bar_fills_proportionally(int done, int total, string expected) =>
        Assert.Equal(expected, SessionView.Bar(done, total, 10));
}

public class MotionProgressTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 3, 14, 0, 0, TimeSpan.Zero);

    private static MachineStatus Status(string name, int done, int total, double elapsedS, string step = "") => new()
    {
        State = "Run",
        Position = new Position { XMm = -60, YMm = -50, ZMm = -20 },
        At = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(Start.AddSeconds(elapsedS)),
        Activity = new MachineActivity
        {
            Name = name, StepsDone = done, StepsTotal = total, Step = step,
            StartedAt = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(Start),
        },
    };

    [Fact]
    public void Calibration_progress_shows_stops_done_elapsed_and_an_eta_in_wall_time_from_the_mean_stop_time()
    {
        // 4 of 16 stops in 12 s: 3 s a stop, 36 s left.
        var text = SmpRobot.Operator.Cli.MotionCall.ProgressText(Status("gantry calibration", 4, 16, 12, "stop 5: moving to (-60, -50, -20)"), new DateTimeOffset(2026, 12, 3, 15, 10, 0, TimeSpan.FromHours(1)));
        Assert.Equal("gantry calibration · 4/16 done · 12.0 s elapsed · ETA 15:10:36 (36.0 s left) · stop 5: moving to (-60, -50, -20) · gantry Run x -60.000 y -50.000 z -20.000", text);
    }

    [Fact]
    public void Before_the_first_stop_and_for_homing_no_eta_is_made_up()
    {
        Assert.Contains("ETA after the first step", SmpRobot.Operator.Cli.MotionCall.ProgressText(Status("drift check", 0, 5, 1.5), Start), StringComparison.Ordinal);
        var homing = SmpRobot.Operator.Cli.MotionCall.ProgressText(Status("homing", 0, 0, 8), Start);
        Assert.Equal("homing · 8.0 s elapsed · no position reports during the homing cycle", homing);
    }

    [Fact]
    public void A_treatment_sessions_view_counts_the_dots_the_camera_flagged_and_names_the_command_that_lists_them()
    {
        var s = SessionViewTests.Sample(SessionState.Running);
        s.TreatmentId = "t-7";
        s.TreatmentSession = 1;
        // No check recorded yet (or a camera that cannot check): no row.
        Assert.DoesNotContain(SessionView.Lines(new SessionSnapshot(s)), l => l.Label == "Checks");
        Assert.Null(SessionView.DotCheckText(s));

        s.DotChecks = new DotCheckCounts { OnTarget = 40 };
        var clean = Assert.Single(SessionView.Lines(new SessionSnapshot(s)), l => l.Label == "Checks");
        Assert.Equal("camera: 40 placed dot(s) checked, all on target · smp treatment dots t-7", clean.Value);
        Assert.DoesNotContain("camera flagged", SessionView.ProgressLine(new SessionSnapshot(s)), StringComparison.Ordinal);

        s.DotChecks = new DotCheckCounts { OnTarget = 40, OffTarget = 1, NotSeen = 2 };
        var flagged = Assert.Single(SessionView.Lines(new SessionSnapshot(s)), l => l.Label == "Checks");
        Assert.Equal("camera FLAGGED 3 placed dot(s): 1 off target, 2 not seen (of 43 checked) · inspect them: smp treatment dots t-7", flagged.Value);
        Assert.Equal("bold yellow", flagged.Style);
        Assert.Contains("| camera flagged 3 dot(s) (1 off target, 2 not seen): smp treatment dots t-7", SessionView.ProgressLine(new SessionSnapshot(s)), StringComparison.Ordinal);
        Assert.Contains("Checks    camera FLAGGED 3 placed dot(s)", SessionView.Summary(s), StringComparison.Ordinal);

        // A loose plan's session has no record to list.
        var loose = SessionViewTests.Sample(SessionState.Running);
        loose.DotChecks = new DotCheckCounts { NotSeen = 1 };
        Assert.Null(SessionView.DotCheckText(loose));
    }

    [Fact]
    public void While_the_record_store_is_unreachable_the_view_shows_the_last_read_state_as_not_known_now()
    {
        var since = new DateTimeOffset(2026, 12, 5, 10, 4, 5, TimeSpan.Zero);
        var snapshot = new SessionSnapshot(SessionViewTests.Sample(SessionState.Running)) { StoreUnreachable = "record store unreachable: postgres://smp@db/smp: Failed to connect", StoreUnreachableSince = since };
        var lines = SessionView.Lines(snapshot);
        var state = Assert.Single(lines, l => l.Label == "Session");
        Assert.Equal("NOT KNOWN NOW · last read RUNNING before 10:04:05", state.Value);
        var record = Assert.Single(lines, l => l.Label == "RECORD");
        Assert.Contains("its record store does not (since 10:04:05): record store unreachable: postgres://smp@db/smp", record.Value, StringComparison.Ordinal);
        Assert.Contains("read before then, not now", record.Value, StringComparison.Ordinal);
        Assert.StartsWith("RECORD STORE UNREACHABLE, last read before 10:04:05: RUNNING 480/500", SessionView.ProgressLine(snapshot), StringComparison.Ordinal);
        // Once read again, nothing of it stays.
        Assert.DoesNotContain(SessionView.Lines(new SessionSnapshot(SessionViewTests.Sample(SessionState.Running))), l => l.Label == "RECORD");
    }
}
