using SmpRobot.Contracts.V1;
using SmpRobot.Tests.Integration;

namespace SmpRobot.Tests.Faults;

/// <summary>
/// One whole session per injected fault, through the real controller host: whatever the fault, the
/// controller stays safe (see <see cref="FaultSession.AssertSafeEnd"/>). Faults strike dot 5 (or its
/// lines) of a 40-dot plan.
/// </summary>
[Collection(ControllerCollection.Name)]
public class SessionFaultTests
{
    private const int Dot = 5;

    /// <summary>Skip reason of the tests that need acknowledgement timeouts in SessionManager (being added by the lead engineer).</summary>
    private const string NeedsAckTimeouts = "needs ack timeouts in SessionManager: today a line whose ok never comes is awaited forever (status polling still answers, so it is no link fault) and the session stays RUNNING";

    /// <summary>Skip reason: see the test's comment.</summary>
    private const string PlungeDepthNotVerified = "controller gap: a plunge that falls short (a lost digit in its Z distance) is still confirmed as Placed; the next dot's verify only holds the session afterwards";

    /// <summary>Skip reason: see the test's comment.</summary>
    private const string NoRecoveryAfterSilence = "controller gap: after a status-silence LinkLost nothing re-contacts the firmware; once it answers again it runs its queued lines and the needle drive stays on";

    [Fact]
    public async Task A_dropped_digit_in_a_travel_line_is_caught_before_the_plunge()
    {
        var line = FaultSession.LineOf(Dot, "travel-xy");
        await using var run = await FaultSession.RunAsync($"drop-at-line={line}");
        Assert.Contains("\"G90 G1 X", run.Injected("drop-at-line").Detail, StringComparison.Ordinal);
        run.AssertSafeEnd("not at dot", maxInDoubt: 0, linkWorks: true, SessionState.Paused);
        Assert.Equal(Dot - 1, run.Final.Dots.Placed);
    }

    [Fact]
    public async Task A_flipped_bit_in_a_travel_line_is_caught_before_the_plunge()
    {
        var line = FaultSession.LineOf(Dot, "travel-xy");
        await using var run = await FaultSession.RunAsync($"flip-at-line={line}");
        Assert.Contains("\"G90 G1 X", run.Injected("flip-at-line").Detail, StringComparison.Ordinal);
        run.AssertSafeEnd("not at dot", maxInDoubt: 0, linkWorks: true, SessionState.Paused);
        Assert.Equal(Dot - 1, run.Final.Dots.Placed);
    }

    // "G91 G1 Z-2.45" arrives as "Z-.45": the needle stops 1 mm above the skin, the dwell, retract and
    // confirm lines all succeed, and the controller marks the dot Placed; the next dot's verify then
    // finds the gantry 2 mm too high and holds. Expected: that dot ends IN_DOUBT (or the depth is
    // checked before Placed), never Placed without a plunge.
    [Fact]
    public async Task A_dropped_digit_in_a_plunge_line_does_not_count_an_unplaced_dot_as_placed()
    {
        var line = FaultSession.LineOf(Dot, "plunge");
        await using var run = await FaultSession.RunAsync($"drop-at-line={line}");
        Assert.Contains("\"G91 G1 Z-", run.Injected("drop-at-line").Detail, StringComparison.Ordinal);
        run.AssertSafeEnd("", maxInDoubt: 1, linkWorks: true, SessionState.Paused, SessionState.Faulted);
    }

    [Fact]
    public async Task Random_byte_drops_never_place_a_dot_twice_or_in_the_wrong_place()
    {
        await using var run = await FaultSession.RunAsync("drop=0.002,seed=3");
        Assert.NotEmpty(run.Simulator.FaultLog);
        run.AssertSafeEnd("", maxInDoubt: 1, linkWorks: true, SessionState.Paused, SessionState.Faulted);
    }

    [Fact]
    public async Task Random_bit_flips_never_place_a_dot_twice_or_in_the_wrong_place()
    {
        await using var run = await FaultSession.RunAsync("flip=0.002,seed=4");
        Assert.NotEmpty(run.Simulator.FaultLog);
        run.AssertSafeEnd("", maxInDoubt: 1, linkWorks: true, SessionState.Paused, SessionState.Faulted);
    }

    [Fact]
    public async Task A_garbled_status_report_is_dropped_and_the_session_completes_with_every_dot_placed_once()
    {
        await using var run = await FaultSession.RunAsync($"garble-status-at-dot={Dot}");
        Assert.Contains("became", run.Injected("garble-status-at-dot").Detail, StringComparison.Ordinal);
        run.AssertSafeEnd("", maxInDoubt: 0, linkWorks: true, SessionState.Completed);
        Assert.All(run.Placements(), p => Assert.Equal(1, p.Value));
        var machine = await run.Fixture.Machine.GetStatusAsync(new GetMachineStatusRequest(), deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.True(machine.Connected);
        Assert.Equal(1ul, machine.GarbledStatusReports);
        Assert.StartsWith("<", machine.LastGarbledStatus, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Three_garbled_status_reports_in_a_row_fault_the_link_with_every_dot_known()
    {
        await using var run = await FaultSession.RunAsync($"garble-status-at-dot={Dot}:3");
        Assert.Equal(3, run.Simulator.FaultLog.Count(f => f.Fault == "garble-status-at-dot"));
        run.AssertSafeEnd("garbled status reports in a row", maxInDoubt: 1, linkWorks: true, SessionState.Faulted);
        Assert.True(run.Final.Dots.Placed >= Dot - 1, $"placed {run.Final.Dots.Placed}");
    }

    [Fact]
    public async Task Random_damage_to_status_reports_never_places_a_dot_twice_or_in_the_wrong_place()
    {
        await using var run = await FaultSession.RunAsync("garble-status=0.05,seed=5");
        Assert.Contains(run.Simulator.FaultLog, f => f.Fault == "garble-status");
        run.AssertSafeEnd("", maxInDoubt: 1, linkWorks: true, SessionState.Completed, SessionState.Paused, SessionState.Faulted);
    }

    [Fact]
    public async Task Late_oks_slow_the_session_but_it_completes_with_every_dot_placed_once()
    {
        await using var run = await FaultSession.RunAsync("delay-ok=5");
        Assert.True(run.Simulator.FaultLog.Count(f => f.Fault == "delay-ok") > FaultSession.Dots * 4);
        run.AssertSafeEnd("", maxInDoubt: 0, linkWorks: true, SessionState.Completed);
        Assert.All(run.Placements(), p => Assert.Equal(1, p.Value));
    }

    // The ok of dot 5's plunge line never comes. The client matches the following oks one line early,
    // so dot 5's acks complete (its confirm's ok arrives as the retract's) and the arrival ack of dot 6
    // is the one that never completes. Expected: FAULTED "... did not acknowledge ..." in bounded time,
    // at most the dot in flight in doubt, needle drive off at hover.
    [Fact]
    public async Task A_lost_ok_faults_the_session_in_bounded_time()
    {
        var line = FaultSession.LineOf(Dot, "plunge");
        await using var run = await FaultSession.RunAsync($"lose-ok-at-line={line}", TimeSpan.FromSeconds(15));
        Assert.Equal(line, run.Injected("lose-ok-at-line").Line);
        run.AssertSafeEnd("acknowledge", maxInDoubt: 1, linkWorks: true, SessionState.Faulted);
    }

    [Fact]
    public async Task A_hard_limit_alarm_as_a_plunge_starts_faults_the_session_with_that_dot_in_doubt()
    {
        await using var run = await FaultSession.RunAsync($"alarm-at-dot={Dot}");
        Assert.Equal(Dot, run.Injected("alarm-at-dot").Dot);
        run.AssertSafeEnd("ALARM:1", maxInDoubt: 1, linkWorks: true, SessionState.Faulted);
        Assert.Equal(1, run.Final.Dots.InDoubt);
        Assert.Equal(Dot - 1, run.Final.Dots.Placed);
        // grbl locks after a hard limit and swallows a reset in its first half second: the controller resets it
        // after that, repeating until the banner, and never re-sends a line. The machine answers again, unhomed.
        using var watch = run.Fixture.Machine.WatchStatus(new WatchMachineStatusRequest(), deadline: DateTime.UtcNow.AddSeconds(15));
        MachineStatus machine;
        do
        {
            Assert.True(await watch.ResponseStream.MoveNext(CancellationToken.None), "the machine watch ended");
            machine = watch.ResponseStream.Current;
        }
        while (!machine.LastAlarm.Contains("answers again", StringComparison.Ordinal));
        Assert.True(machine.Connected);
        Assert.False(machine.Homed);
        Assert.StartsWith("ALARM:1", machine.LastAlarm, StringComparison.Ordinal);
        var alarmAt = run.Injected("alarm-at-dot").SimSeconds;
        var resets = run.Simulator.RealtimeLog.Where(b => b.Command == 0x18 && b.SimSeconds > alarmAt).ToList();
        Assert.NotEmpty(resets);
        Assert.Contains(resets, r => r.SimSeconds >= alarmAt + SmpRobot.Controller.Gantry.Simulation.SimulatedGantry.CriticalAlarmResetDeafSeconds);
        Assert.True((await run.Fixture.Machine.GetStatusAsync(new GetMachineStatusRequest())).Connected);
    }

    [Fact]
    public async Task A_brown_out_reset_mid_plunge_faults_the_session_with_that_dot_in_doubt()
    {
        await using var run = await FaultSession.RunAsync($"reset-at-dot={Dot}");
        Assert.Equal(Dot, run.Injected("reset-at-dot").Dot);
        run.AssertSafeEnd("restarted", maxInDoubt: 1, linkWorks: true, SessionState.Faulted);
        Assert.Equal(1, run.Final.Dots.InDoubt);
        Assert.Equal(Dot - 1, run.Final.Dots.Placed);
        Assert.Contains(run.Simulator.MotionRecord, m => !m.Completed && m.Line.StartsWith("G91 G1 Z-", StringComparison.Ordinal));
        Assert.False((await run.Fixture.Machine.GetStatusAsync(new GetMachineStatusRequest())).Homed);
    }

    // A 16-byte receive buffer overflows on the first travel line (27 bytes) whatever the timing: the
    // line loses its tail and newline and merges with the next, so one ok answers two lines and the
    // host waits for an ok that never comes. Expected: FAULTED in bounded time, nothing in the skin.
    [Fact]
    public async Task A_receive_buffer_smaller_than_assumed_corrupts_the_stream_but_not_the_skin()
    {
        await using var run = await FaultSession.RunAsync("rx=16");
        Assert.Contains(run.Simulator.FaultLog, f => f.Fault == "rx");
        run.AssertSafeEnd("", maxInDoubt: 1, linkWorks: true, SessionState.Paused, SessionState.Faulted);
    }

    [Fact]
    public async Task A_firmware_that_hangs_with_the_needle_down_faults_the_session_and_asks_for_the_hard_stop()
    {
        await using var run = await FaultSession.RunAsync($"stall-at-dot={Dot}");
        Assert.Equal(Dot, run.Injected("stall-at-dot").Dot);
        run.AssertSafeEnd("status", maxInDoubt: 1, linkWorks: false, SessionState.Faulted);
        Assert.Contains("hard-wired e-stop", run.Final.Reason, StringComparison.Ordinal);
        Assert.Equal(1, run.Final.Dots.InDoubt);
    }

    // The firmware hangs 1.5 s with the needle at depth: status polling times out after 1 s (LinkLost,
    // session FAULTED, dot in doubt, the safe stop is skipped as "not connected"). When it answers again
    // it runs its queued dwell, retract and the next travel, with the needle drive still on, and nobody
    // tells it to stop. Expected: the controller re-contacts it (soft reset, M5, retract).
    [Fact]
    public async Task A_firmware_that_hangs_then_recovers_is_stopped_once_it_answers_again()
    {
        await using var run = await FaultSession.RunAsync($"stall-at-dot={Dot}:1500");
        Assert.Equal(Dot, run.Injected("stall-at-dot").Dot);
        // Once the firmware answers again the controller must not leave the needle drive running.
        await WaitUntilAsync(() => run.Simulator.FaultLog.Any(f => f.Detail == "firmware answers again"));
        await WaitUntilAsync(() => !run.Simulator.SpindleOn);
        run.AssertSafeEnd("status", maxInDoubt: 1, linkWorks: true, SessionState.Faulted);
    }

    [Fact]
    public async Task A_pulled_cable_after_a_plunge_faults_the_session_with_that_dot_in_doubt()
    {
        await using var run = await FaultSession.RunAsync($"disconnect-at-dot={Dot}");
        Assert.Equal(Dot, run.Injected("disconnect-at-dot").Dot);
        run.AssertSafeEnd("closed", maxInDoubt: 1, linkWorks: false, SessionState.Faulted);
        Assert.Contains("hard-wired e-stop", run.Final.Reason, StringComparison.Ordinal);
        Assert.Equal(1, run.Final.Dots.InDoubt);
        // The board went on with what it had: the retract of the dot in doubt was in its buffer.
        Assert.Equal(1, run.Placements()[run.Final.InDoubt[0].DotId]);
    }

    /// <summary>Polls a condition on the simulator (no controller state involved), bounded by 10 s.</summary>
    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(20));
        var deadline = TimeProvider.System.GetTimestamp();
        while (!condition())
        {
            Assert.True(TimeProvider.System.GetElapsedTime(deadline) < TimeSpan.FromSeconds(10), "condition not reached within 10 s");
            await timer.WaitForNextTickAsync();
        }
    }
}
