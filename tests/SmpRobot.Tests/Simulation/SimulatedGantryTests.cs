using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Motion;
using SmpRobot.Geometry;

namespace SmpRobot.Tests.Simulation;

public class SimulatedGantryTests
{
    private const double StepX = 1.0 / 80; // sim profile: 80 steps/mm on X

    [Fact]
    public async Task Power_on_prints_banner_and_locks_until_unlocked()
    {
        await using var link = await SimLink.OpenAsync();
        Assert.Equal("Grbl 1.1h ['$' for help]", await link.ReadLineAsync());
        Assert.Equal("[MSG:'$H'|'$X' to unlock]", await link.ReadLineAsync());
        Assert.Equal("Alarm", link.Gantry.State);
        Assert.Equal(link.Gantry.Profile.HomePosition, link.Gantry.Position);

        Assert.Equal("error:9", await link.AckAsync("G0 X10"));
        Assert.Equal(["[MSG:Caution: Unlocked]", "ok"], await link.CommandAsync("$X"));
        Assert.Equal("Idle", link.Gantry.State);
        Assert.False(link.Gantry.Homed);
        Assert.Equal("ok", await link.AckAsync("$X")); // no message when not in alarm
    }

    [Fact]
    public async Task Without_homing_the_board_starts_idle_and_refuses_home()
    {
        await using var link = await SimLink.OpenAsync(TestProfiles.Sim() with { HomingEnabled = false, SoftLimits = false });
        Assert.Equal("Grbl 1.1h ['$' for help]", await link.ReadLineAsync());
        var settled = await link.SettleAsync();
        Assert.StartsWith("<Idle|", settled[^1], StringComparison.Ordinal);
        Assert.Single(settled); // no unlock message
        Assert.Equal("error:5", await link.AckAsync("$H"));
    }

    [Fact]
    public async Task Homing_takes_time_records_motion_and_ends_at_home()
    {
        await using var link = await SimLink.OpenAsync(options: new SimulatedGantryOptions { Version = "1.1f" });
        Assert.Equal("Grbl 1.1f ['$' for help]", await link.ReadLineAsync());
        await link.ReadLineAsync();
        await link.SendAsync("$H");
        var settled = await link.SettleAsync();
        Assert.StartsWith("<Home|", settled[^1], StringComparison.Ordinal);
        Assert.DoesNotContain("ok", settled); // $H answers only when the cycle is over

        link.AdvanceSim(60);
        Assert.Equal("ok", (await link.ReadUntilAsync(SimLink.IsAck))[^1]);
        Assert.True(link.Gantry.Homed);
        Assert.Equal("Idle", link.Gantry.State);
        Assert.Equal(link.Gantry.Profile.HomePosition, link.Gantry.Position);
        var homing = link.Gantry.MotionRecord;
        Assert.NotEmpty(homing);
        Assert.All(homing, m => Assert.Equal(SimMotionKind.Homing, m.Kind));
        Assert.All(homing, m => Assert.True(m.Completed));
        // Pull-off and slow locate on each switch: realistic, not instantaneous.
        Assert.True(homing[^1].EndSimSeconds > 1, $"homing took {homing[^1].EndSimSeconds} s");
        Assert.Equal(link.Gantry.Profile.HomePosition, homing[^1].To);
    }

    [Fact]
    public async Task Ok_means_queued_planner_capacity_bounds_the_oks()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.HomeAsync();
        var planner = link.Gantry.Profile.PlannerBlocks;

        // planner + 1 moves: the last one waits for space; one more line stays in the receive buffer.
        var lines = Enumerable.Range(0, planner + 2).Select(i => i % 2 == 0 ? "G1 X10" : "G1 X20").ToList();
        lines[0] = "G1 X10 F6000";
        foreach (var line in lines) await link.SendAsync(line);
        var settled = await link.SettleAsync();
        Assert.Equal(planner, settled.Count(l => l == "ok"));
        var lastLineBytes = lines[^1].Length + 1;
        Assert.Equal($"Bf:0,{128 - lastLineBytes}", Regex.Match(settled[^1], @"Bf:\d+,\d+").Value);
        Assert.DoesNotContain(link.Gantry.MotionRecord, m => m.Completed && m.Kind == SimMotionKind.Feed); // all those oks, nothing finished yet

        var first = new Kinematics(link.Gantry.Profile).Move(link.Gantry.Profile.HomePosition, new Vec3(10, 0, 0), 6000);
        link.AdvanceSim(first.DurationSeconds);
        settled = await link.SettleAsync();
        Assert.Equal(["ok"], settled[..^1]); // one block done, one more line queued
        Assert.Single(link.Gantry.MotionRecord, m => m.Kind == SimMotionKind.Feed);

        link.AdvanceSim(60);
        settled = await link.SettleAsync();
        Assert.Equal(["ok"], settled[..^1]);
        Assert.StartsWith("<Idle|MPos:10.000,0.000,0.000|Bf:15,128|", settled[^1], StringComparison.Ordinal);
        Assert.Equal(planner + 2, link.Gantry.MotionRecord.Count(m => m.Kind == SimMotionKind.Feed && m.Completed));
        // Even across one big clock jump, the queued lines ran back to back, as on a real board.
        var feeds = link.Gantry.MotionRecord.Where(m => m.Kind == SimMotionKind.Feed).ToList();
        for (var i = 1; i < feeds.Count; i++) Assert.Equal(feeds[i - 1].EndSimSeconds, feeds[i].StartSimSeconds, 9);
    }

    [Fact]
    public async Task Motion_record_durations_follow_kinematics_back_to_back()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.HomeAsync();
        var homingCount = link.Gantry.MotionRecord.Count;
        var start = link.Gantry.SimulatedSeconds;
        string[] program = ["G0 X50 Y30", "G1 Z-1.5 F600", "G1 X52.5 Y31 F3000", "G0 Z0", "G0 X0 Y0"];
        foreach (var line in program) Assert.Equal("ok", await link.AckAsync(line));
        link.AdvanceSim(30);
        await link.SettleAsync();

        var motions = link.Gantry.MotionRecord.Skip(homingCount).ToList();
        Assert.Equal(program, motions.Select(m => m.Line));
        var kinematics = new Kinematics(link.Gantry.Profile);
        double?[] feeds = [null, 600, 3000, null, null];
        var previousEnd = start;
        for (var i = 0; i < motions.Count; i++)
        {
            var m = motions[i];
            Assert.True(m.Completed);
            Assert.Equal(previousEnd, m.StartSimSeconds, 9); // the planner runs blocks back to back
            Assert.Equal(kinematics.Seconds(m.From, m.To, feeds[i]), m.DurationSeconds, 9);
            previousEnd = m.EndSimSeconds;
        }
        Assert.Equal([SimMotionKind.Rapid, SimMotionKind.Feed, SimMotionKind.Feed, SimMotionKind.Rapid, SimMotionKind.Rapid], motions.Select(m => m.Kind));
        Assert.Equal(new Vec3(52.5, 31, -1.5), motions[2].To);
    }

    [Fact]
    public async Task Dwell_waits_for_the_planner_then_dwells_before_its_ok()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.HomeAsync();
        Assert.Equal("ok", await link.AckAsync("M3 S1000"));
        Assert.True(link.Gantry.SpindleOn);
        await link.SendAsync("G1 X10 F600");
        await link.SendAsync("G4 P0.5");
        Assert.Equal(["ok"], (await link.SettleAsync())[..^1]); // the move's ok only

        var move = new Kinematics(link.Gantry.Profile).Move(link.Gantry.Profile.HomePosition, new Vec3(10, 0, 0), 600);
        link.AdvanceSim(move.DurationSeconds + 0.4);
        Assert.Empty((await link.SettleAsync())[..^1]); // still dwelling
        link.AdvanceSim(0.1);
        Assert.Equal(["ok"], (await link.SettleAsync())[..^1]);

        var dwell = link.Gantry.MotionRecord[^1];
        var feed = link.Gantry.MotionRecord[^2];
        Assert.Equal(SimMotionKind.Dwell, dwell.Kind);
        Assert.Equal(feed.EndSimSeconds, dwell.StartSimSeconds, 9);
        Assert.Equal(0.5, dwell.DurationSeconds, 9);
        Assert.True(dwell.SpindleOn);
        Assert.True(dwell.Completed);
        Assert.Equal(new Vec3(10, 0, 0), dwell.From);
    }

    [Fact]
    public async Task Feed_hold_stops_within_the_deceleration_distance_and_resume_reaches_the_target()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.HomeAsync();
        var t0 = link.Gantry.SimulatedSeconds;
        Assert.Equal("ok", await link.AckAsync("G1 X100 F3000"));
        link.AdvanceSim(1.0); // cruising at 50 mm/s
        var atHold = link.Gantry.Position.X;
        Assert.Equal(1.5625 + (50 * (1.0 - 0.0625)), atHold, 6);
        Assert.Contains("FS:3000,", await link.StatusAsync(), StringComparison.Ordinal);

        await link.RealtimeAsync((byte)'!');
        Assert.Equal("Hold:1", link.Gantry.State);
        link.AdvanceSim(0.2);
        Assert.Equal("Hold:0", link.Gantry.State);
        var stoppedAt = link.Gantry.Position.X;
        var stopDistance = 50.0 * 50 / (2 * 800);
        Assert.InRange(stoppedAt - atHold, 0, stopDistance + StepX);
        Assert.Equal(atHold + stopDistance, stoppedAt, 2);
        var partial = link.Gantry.MotionRecord[^1];
        Assert.False(partial.Completed);
        Assert.Equal(stoppedAt, partial.To.X, 9);
        Assert.Equal(t0 + 1.0 + (50.0 / 800), partial.EndSimSeconds, 6);

        link.AdvanceSim(5);
        Assert.Equal(stoppedAt, link.Gantry.Position.X, 9); // held means held
        await link.RealtimeAsync((byte)'~');
        Assert.Equal("Run", link.Gantry.State);
        link.AdvanceSim(5);
        Assert.Equal(new Vec3(100, 0, 0), link.Gantry.Position);
        var rest = link.Gantry.MotionRecord[^1];
        Assert.True(rest.Completed);
        Assert.Equal(partial.To, rest.From);
        Assert.Equal("G1 X100 F3000", rest.Line);
        Assert.Equal(new Kinematics(link.Gantry.Profile).Seconds(rest.From, rest.To, 3000), rest.DurationSeconds, 9);
        Assert.Equal("Idle", link.Gantry.State);
    }

    [Fact]
    public async Task Realtime_byte_event_fires_before_the_byte_acts()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.HomeAsync();
        Assert.Equal("ok", await link.AckAsync("G1 X100 F3000"));
        link.AdvanceSim(0.5);
        string? stateSeen = null;
        long stamp = 0;
        link.Gantry.RealtimeByteReceived += (_, e) =>
        {
            if (e.Command != (byte)'!') return;
            stateSeen = link.Gantry.State;
            stamp = e.ArrivedTimestamp;
        };
        await link.RealtimeAsync((byte)'!');
        Assert.Equal("Run", stateSeen);
        Assert.Equal("Hold:1", link.Gantry.State);
        var logged = link.Gantry.RealtimeLog[^1];
        Assert.Equal((byte)'!', logged.Command);
        Assert.Equal(stamp, logged.Timestamp);
        Assert.Equal(link.Gantry.SimulatedSeconds, logged.SimSeconds, 9);
    }

    [Fact]
    public async Task Soft_reset_while_moving_alarms_and_forgets_homing()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.HomeAsync();
        Assert.True(link.Gantry.Homed);
        Assert.Equal("ok", await link.AckAsync("M3 S1000"));
        Assert.Equal("ok", await link.AckAsync("G1 X100 F3000"));
        Assert.Equal("ok", await link.AckAsync("G1 X150"));
        link.AdvanceSim(1.0);
        await link.RealtimeAsync(0x18);
        Assert.Equal(["ALARM:3", "Grbl 1.1h ['$' for help]", "[MSG:'$H'|'$X' to unlock]"], await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal)));
        Assert.False(link.Gantry.Homed);
        Assert.False(link.Gantry.SpindleOn);
        Assert.Equal("Alarm", link.Gantry.State);
        var stopped = link.Gantry.Position;
        Assert.Equal(48.4375, stopped.X, 9); // stopped dead where it was
        link.AdvanceSim(10);
        Assert.Equal(stopped, link.Gantry.Position); // the queued G1 X150 was flushed
        var last = link.Gantry.MotionRecord[^1];
        Assert.False(last.Completed);
        Assert.Equal(stopped, last.To);
        Assert.Equal("error:9", await link.AckAsync("G0 X0")); // alarm lock
        await link.CommandAsync("$X");
        Assert.Equal("error:22", await link.AckAsync("G1 X10")); // parser state was reset: no feed
    }

    [Fact]
    public async Task Soft_reset_after_a_completed_hold_keeps_position_without_alarm()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.HomeAsync();
        Assert.Equal("ok", await link.AckAsync("G1 X100 F3000"));
        link.AdvanceSim(1.0);
        await link.RealtimeAsync((byte)'!');
        link.AdvanceSim(0.5);
        Assert.Equal("Hold:0", link.Gantry.State);
        var held = link.Gantry.Position;
        await link.RealtimeAsync(0x18);
        var settled = await link.SettleAsync();
        Assert.Equal("Grbl 1.1h ['$' for help]", settled[0]);
        Assert.DoesNotContain(settled, l => l.StartsWith("ALARM", StringComparison.Ordinal) || l.StartsWith("[MSG", StringComparison.Ordinal));
        Assert.StartsWith("<Idle|MPos:50.000,0.000,0.000|", settled[^1], StringComparison.Ordinal);
        Assert.True(link.Gantry.Homed);
        Assert.Equal(held, link.Gantry.Position);
        link.AdvanceSim(5);
        Assert.Equal(held, link.Gantry.Position); // the rest of the block is gone
    }

    [Fact]
    public async Task Safety_door_cuts_the_spindle_at_once_and_resume_restores_it()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.HomeAsync();
        Assert.Equal("ok", await link.AckAsync("M3 S1000"));
        Assert.Equal("ok", await link.AckAsync("G1 X50 F600"));
        link.AdvanceSim(1.0);
        var before = link.Gantry.SimulatedSeconds;
        await link.RealtimeAsync(0x84);
        Assert.False(link.Gantry.SpindleOn); // no time has passed: immediate
        Assert.Equal((before, false), link.Gantry.SpindleLog[^1]);
        Assert.Equal("Door:2", link.Gantry.State);
        var settled = await link.SettleAsync();
        Assert.Contains("[MSG:Check Door]", settled);
        Assert.EndsWith("|FS:600,0>", settled[^1], StringComparison.Ordinal);

        link.AdvanceSim(1);
        Assert.Equal("Door:0", link.Gantry.State);
        var stopped = link.Gantry.Position;
        Assert.InRange(stopped.X, 10 - 1e-9, 10 + (10.0 * 10 / (2 * 800)) + StepX);
        await link.RealtimeAsync((byte)'~');
        Assert.True(link.Gantry.SpindleOn);
        Assert.Equal("Door:3", link.Gantry.State); // spinning up before motion resumes
        link.AdvanceSim(3.9);
        Assert.Equal(stopped, link.Gantry.Position);
        link.AdvanceSim(0.2);
        Assert.Equal("Run", link.Gantry.State);
        link.AdvanceSim(10);
        Assert.Equal(new Vec3(50, 0, 0), link.Gantry.Position);
        Assert.Equal([true, false, true], link.Gantry.SpindleLog.Select(s => s.On));
        var last = link.Gantry.MotionRecord[^1];
        Assert.True(last.SpindleOn);
        Assert.True(last.Completed);
    }

    [Fact]
    public async Task A_reset_within_half_a_second_of_a_limit_alarm_is_discarded_as_grbl_does()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.HomeAsync();
        await link.SendAsync("G0 X250"); // beyond the soft limit while idle: ALARM:2 at once
        Assert.Equal(["ALARM:2", "[MSG:Reset to continue]", "ok"], await link.ReadUntilAsync(SimLink.IsAck));

        link.AdvanceSim(SimulatedGantry.CriticalAlarmResetDeafSeconds / 2);
        await link.RealtimeAsync(0x18); // swallowed: no banner
        await link.Gantry.WhenProtocolBlockedAsync().WaitAsync(SimLink.Timeout);
        Assert.Equal(0, link.Gantry.OutputBytesPending);
        Assert.Equal("Alarm", link.Gantry.State);

        link.AdvanceSim(SimulatedGantry.CriticalAlarmResetDeafSeconds);
        await link.RealtimeAsync(0x18);
        Assert.Equal("Grbl 1.1h ['$' for help]", (await link.ReadUntilAsync(l => l.StartsWith("Grbl", StringComparison.Ordinal)))[^1]);
    }

    [Fact]
    public async Task Soft_limit_alarms_without_executing_and_waits_for_reset()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.HomeAsync();
        var motionsBefore = link.Gantry.MotionRecord.Count;
        Assert.Equal("ok", await link.AckAsync("G1 X100 F3000"));
        link.AdvanceSim(1.0);
        var atAlarm = link.Gantry.Position.X;
        await link.SendAsync("G0 X250");
        await link.SendAsync("G0 X0");
        Assert.StartsWith("<Hold:1|", await link.StatusAsync(), StringComparison.Ordinal); // grbl holds first
        link.AdvanceSim(0.2);
        // As grbl 1.1h sends it: the alarm, the message, then the ok of the line that raised it; the next line is not run.
        Assert.Equal(["ALARM:2", "[MSG:Reset to continue]", "ok"], await link.ReadUntilAsync(SimLink.IsAck));
        Assert.Equal("Alarm", link.Gantry.State);
        Assert.True(link.Gantry.Homed); // position kept
        var stopped = link.Gantry.Position.X;
        Assert.InRange(stopped - atAlarm, 0, (50.0 * 50 / (2 * 800)) + StepX); // held, not killed
        link.AdvanceSim(5);
        Assert.Equal(stopped, link.Gantry.Position.X);
        Assert.DoesNotContain(link.Gantry.MotionRecord.Skip(motionsBefore), m => m.To.X > 200 || m.Line == "G0 X0");

        // Locked until reset: nothing is answered, not even a status query.
        await link.SendAsync("$X");
        await link.RealtimeAsync((byte)'?');
        await link.Gantry.WhenProtocolBlockedAsync().WaitAsync(SimLink.Timeout);
        Assert.Equal(0, link.Gantry.OutputBytesPending);
        await link.RealtimeAsync(0x18);
        Assert.Equal(["Grbl 1.1h ['$' for help]", "[MSG:'$H'|'$X' to unlock]"], (await link.SettleAsync())[..^1]);
        Assert.Equal(["[MSG:Caution: Unlocked]", "ok"], await link.CommandAsync("$X"));
        Assert.True(link.Gantry.Homed);
        Assert.Equal("Idle", link.Gantry.State);
    }

    [Fact]
    public async Task Receive_buffer_overflow_drops_bytes_silently()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        var comment = "(" + new string('x', 198) + ")";
        await link.WriteAsync(Encoding.ASCII.GetBytes(comment)); // one write of 200 bytes, no newline
        Assert.Equal(200 - 128, link.Gantry.DroppedBytes);
        await link.SettleAsync(); // let the firmware drain its buffer, or the newline would be dropped too
        await link.WriteAsync(Encoding.ASCII.GetBytes("\n"));
        // The closing ')' was dropped: the line is still inside its comment, so it is empty: ok.
        Assert.Equal("ok", (await link.ReadUntilAsync(SimLink.IsAck))[^1]);
        Assert.Equal(72, link.Gantry.DroppedBytes);

        // A block longer than grbl's line buffer is refused, not truncated and run.
        Assert.Equal("error:11", await link.AckAsync("$X" + new string(' ', 10) + "G4P0" + new string('0', 90)));
    }

    [Fact]
    public async Task Settings_report_lists_the_profile()
    {
        var profile = TestProfiles.Desk();
        await using var link = await SimLink.OpenAsync(profile);
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        var lines = await link.CommandAsync("$$");
        Assert.Equal("ok", lines[^1]);
        var settings = lines[..^1].Select(l => l.TrimStart('$').Split('=')).ToDictionary(p => int.Parse(p[0], CultureInfo.InvariantCulture), p => double.Parse(p[1], CultureInfo.InvariantCulture));
        Assert.Equal(0, settings[13]);
        Assert.Equal(profile.SoftLimits ? 1 : 0, settings[20]);
        Assert.Equal(profile.HomingEnabled ? 1 : 0, settings[22]);
        for (var a = 0; a < 3; a++)
        {
            Assert.Equal(profile.StepsPerMm[a], settings[100 + a], 3);
            Assert.Equal(profile.MaxRateMmPerMin[a], settings[110 + a], 3);
            Assert.Equal(profile.AccelerationMmPerS2[a], settings[120 + a], 3);
            Assert.Equal(profile.MaxTravelMm[a], settings[130 + a], 3);
        }
        Assert.Matches(@"^\$100=\d+\.\d{3}$", lines.Single(l => l.StartsWith("$100=", StringComparison.Ordinal)));
        Assert.Equal(["[VER:1.1h.20190830:SmpRobot simulator]", $"[OPT:V,{profile.PlannerBlocks},{profile.RxBufferBytes}]", "ok"], await link.CommandAsync("$I"));
    }

    [Fact]
    public async Task Check_mode_parses_without_moving_and_leaves_through_a_reset()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        Assert.Equal("error:8", await link.AckAsync("$C")); // not from Alarm
        await link.CommandAsync("$X");
        Assert.Equal(["[MSG:Enabled]", "ok"], await link.CommandAsync("$C"));
        Assert.Equal("Check", link.Gantry.State);
        Assert.Equal("ok", await link.AckAsync("M3 S1000"));
        Assert.Equal("ok", await link.AckAsync("G1 X10 Y10 F600"));
        Assert.Equal("ok", await link.AckAsync("G4 P100")); // no waiting in check mode
        Assert.Equal("error:22", await link.AckAsync("G1 X1 F0"));
        Assert.Equal("ok", await link.AckAsync("G0 Z-40"));
        Assert.Empty(link.Gantry.MotionRecord);
        Assert.Empty(link.Gantry.SpindleLog);
        Assert.Equal(link.Gantry.Profile.HomePosition, link.Gantry.Position);

        await link.SendAsync("$C");
        Assert.Equal(["[MSG:Disabled]", "ok", "Grbl 1.1h ['$' for help]"], await link.ReadUntilAsync(l => l.StartsWith("Grbl", StringComparison.Ordinal)));
        Assert.Equal("Idle", link.Gantry.State);
        Assert.Equal("ok", await link.AckAsync("G0 X10"));
        link.AdvanceSim(10);
        Assert.Equal(new Vec3(10, 0, 0), link.Gantry.Position); // from the physical position, not the checked program's
    }

    [Fact]
    public async Task Status_report_has_grbl_format()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        Assert.Equal("<Alarm|MPos:0.000,0.000,0.000|Bf:15,128|FS:0,0>", await link.StatusAsync());
        await link.HomeAsync();
        Assert.Equal("ok", await link.AckAsync("M3 S750"));
        Assert.Equal("ok", await link.AckAsync("G1 X12.34567 Y0.5 F1200"));
        Assert.Matches(@"^<Run\|MPos:0\.000,0\.000,0\.000\|Bf:14,128\|FS:0,750>$", await link.StatusAsync());
        link.AdvanceSim(60);
        Assert.Equal("<Idle|MPos:12.350,0.500,0.000|Bf:15,128|FS:0,750>", await link.StatusAsync()); // on the step grid
    }

    [Fact]
    public async Task Gcode_errors_use_grbl_codes()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.CommandAsync("$X");
        Assert.Equal("error:22", await link.AckAsync("G1 X10"));
        Assert.Equal("error:20", await link.AckAsync("G20"));
        Assert.Equal("error:20", await link.AckAsync("G2 X1 Y1 I1"));
        Assert.Equal("error:2", await link.AckAsync("G0 Xabc"));
        Assert.Equal("error:1", await link.AckAsync("10"));
        Assert.Equal("error:21", await link.AckAsync("G0 G1 X1"));
        Assert.Equal("error:25", await link.AckAsync("G0 X1 X2"));
        Assert.Equal("error:28", await link.AckAsync("G4"));
        Assert.Equal("error:3", await link.AckAsync("$99=5")); // no such setting
        Assert.Equal("ok", await link.AckAsync("g21 g90 (comment) g0 x1 ; trailing"));
        Assert.Equal("ok", await link.AckAsync(""));
        Assert.Equal("ok", await link.AckAsync("G91 G0 X1"));
        Assert.Equal("ok", await link.AckAsync("G53 G0 Y5"));
        link.AdvanceSim(10);
        Assert.Equal(new Vec3(2, 5, 0), link.Gantry.Position);
    }

    [Fact]
    public async Task Jog_runs_cancels_and_respects_travel()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.HomeAsync();
        Assert.Equal("error:15", await link.AckAsync("$J=G91 X-1 F600"));
        Assert.Equal("error:22", await link.AckAsync("$J=G91 X1"));
        Assert.Equal("error:16", await link.AckAsync("$J=G1 X1 F100"));
        Assert.Equal("ok", await link.AckAsync("$J=G91 X50 F3000"));
        Assert.Equal("Jog", link.Gantry.State);
        Assert.Equal("error:9", await link.AckAsync("G0 X0")); // G-code locked while jogging
        link.AdvanceSim(0.5);
        await link.RealtimeAsync(0x85);
        link.AdvanceSim(0.5);
        Assert.Equal("Idle", link.Gantry.State);
        var jog = link.Gantry.MotionRecord[^1];
        Assert.Equal(SimMotionKind.Jog, jog.Kind);
        Assert.False(jog.Completed);
        Assert.InRange(jog.To.X, 10, 50 - 1);
        // The parser continues from where the jog stopped.
        Assert.Equal("ok", await link.AckAsync("$J=G91 X1 F600"));
        link.AdvanceSim(5);
        Assert.Equal(jog.To.X + 1, link.Gantry.Position.X, 9);
    }

    [Fact]
    public async Task Disconnect_ends_the_link_and_reopening_hard_resets()
    {
        await using var link = await SimLink.OpenAsync();
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.HomeAsync();
        Assert.Equal("ok", await link.AckAsync("G0 X20"));
        link.AdvanceSim(10);
        link.Gantry.Disconnect();
        Assert.Equal(0, await link.Transport.ReadAsync(new byte[16], CancellationToken.None).AsTask().WaitAsync(SimLink.Timeout));
        await Assert.ThrowsAsync<IOException>(() => link.Transport.WriteAsync(new byte[] { (byte)'?' }, CancellationToken.None).AsTask());

        await using var second = new InProcessGantryTransport(link.Gantry);
        await second.OpenAsync(CancellationToken.None);
        var buffer = new byte[256];
        var text = new StringBuilder();
        while (!text.ToString().Contains("unlock", StringComparison.Ordinal))
        {
            var n = await second.ReadAsync(buffer, CancellationToken.None).AsTask().WaitAsync(SimLink.Timeout);
            Assert.NotEqual(0, n);
            text.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }
        Assert.Equal("\r\nGrbl 1.1h ['$' for help]\r\n[MSG:'$H'|'$X' to unlock]\r\n", text.ToString());
        Assert.False(link.Gantry.Homed);
        Assert.Equal(new Vec3(20, 0, 0), link.Gantry.Position); // a reset does not move the machine
        Assert.Equal("sim", second.Description);
    }

    [Fact]
    public async Task Runs_on_a_real_clock_with_a_high_time_scale()
    {
        await using var link = await SimLink.OpenAsync(time: TimeProvider.System, options: new SimulatedGantryOptions { TimeScale = 1000 });
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        Assert.Equal("ok", await link.AckAsync("$H"));
        Assert.Equal("ok", await link.AckAsync("G1 X100 Y50 Z-20 F3000"));
        Assert.Equal("ok", await link.AckAsync("G0 X10"));
        Assert.Equal("ok", await link.AckAsync("G4 P0"));
        Assert.Equal(new Vec3(10, 50, -20), link.Gantry.Position);
        Assert.Equal("Idle", link.Gantry.State);
        var record = link.Gantry.MotionRecord;
        Assert.Equal(SimMotionKind.Dwell, record[^1].Kind);
        Assert.Equal("G0 X10", record[^2].Line);
        Assert.Equal("G1 X100 Y50 Z-20 F3000", record[^3].Line);
        Assert.True(record[^2].StartSimSeconds >= record[^3].EndSimSeconds - 1e-9);
        Assert.Equal(new Kinematics(link.Gantry.Profile).Seconds(record[^3].From, record[^3].To, 3000), record[^3].DurationSeconds, 9);
    }
}
