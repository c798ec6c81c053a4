using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Safety;
using SmpRobot.Controller.Sessions;
using SmpRobot.Controller.Storage;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Connect;

/// <summary>grbl check mode ($C) against the simulated gantry: nothing moves, every refusal is reported, the machine is usable after.</summary>
public class CheckModeTests
{
    private static readonly TimeSpan Timeout = SimRig.Timeout;

    private static int MotionsOtherThanHoming(SimRig rig) => rig.Simulator.MotionRecord.Count(m => m.Kind != Controller.Gantry.Simulation.SimMotionKind.Homing);

    [Fact]
    public async Task A_clean_program_passes_and_nothing_moves()
    {
        await using var rig = await SimRig.StartAsync(profile: TestProfiles.SimOrigin());
        string[] program = ["G21 G90", "M3 S1000", "G90 G1 X50 Y60 F6000", "G91 G1 Z-5 F1200", "G4 P0.2", "G91 G1 Z5 F1200", "G4 P0", "M5"];

        var report = await CheckMode.RunAsync(rig.Client, program, CancellationToken.None).WaitAsync(Timeout);

        Assert.True(report.Passed, report.Describe());
        Assert.Equal((8, 8, 0), (report.LinesTotal, report.LinesChecked, report.TotalErrors));
        Assert.Null(report.Alarm);
        Assert.Equal("check mode: all 8 lines accepted by the firmware", report.Describe());
        Assert.Equal(0, MotionsOtherThanHoming(rig));
        Assert.Equal(rig.Profile.HomePosition, rig.Simulator.Position);
        Assert.False(rig.Simulator.SpindleOn);

        // Check mode is over: the next line moves for real, and the machine is still homed.
        var status = await rig.Client.QueryStatusAsync(CancellationToken.None).WaitAsync(Timeout);
        Assert.Equal("Idle", status.State);
        Assert.True(rig.Connection.IsHomed);
        Assert.True((await rig.Client.ExecuteAsync("G90 G0 X5", CancellationToken.None).WaitAsync(Timeout)).Ok);
        Assert.True((await rig.Client.ExecuteAsync("G4 P0", CancellationToken.None).WaitAsync(Timeout)).Ok);
        Assert.Equal(5, rig.Simulator.Position.X, 6);
    }

    [Fact]
    public async Task Bad_lines_and_an_out_of_envelope_move_are_reported_with_line_numbers_and_meanings()
    {
        await using var rig = await SimRig.StartAsync(profile: TestProfiles.SimOrigin());
        string[] program =
        [
            "G21 G90",
            "G90 G1 X10 Y10 F6000",
            "G5 X1",                    // 3: unsupported command
            "G91 G1 Z-2 F1200",
            "G4",                       // 5: dwell without P
            "G91 G1 Z2 F1200",
            "G90 G1 X250 Y10 F6000",    // 7: beyond X max travel 200: soft limit, ALARM:2
            "G90 G1 X20 Y20 F6000",
            "G4 P0",
        ];

        var report = await CheckMode.RunAsync(rig.Client, program, CancellationToken.None).WaitAsync(Timeout);

        Assert.False(report.Passed);
        Assert.Equal(2, report.TotalErrors);
        Assert.Equal([(3, "G5 X1", 20), (5, "G4", 28)], report.Errors.Select(e => (e.LineNumber, e.Line, e.ErrorCode)));
        Assert.Equal(GrblProtocol.ErrorText(20), report.Errors[0].Meaning);
        Assert.False(string.IsNullOrWhiteSpace(report.Errors[1].Meaning));
        Assert.NotNull(report.Alarm);
        Assert.Equal((7, "G90 G1 X250 Y10 F6000", 2), (report.Alarm.LineNumber, report.Alarm.Line, report.Alarm.AlarmCode));
        Assert.Equal(GrblProtocol.AlarmText(2), report.Alarm.Meaning);
        Assert.Equal(6, report.LinesChecked); // lines 8 and 9 were never checked
        Assert.Equal("", report.Interrupted);

        var text = report.Describe();
        Assert.Contains("line 3 'G5 X1': error:20", text, StringComparison.Ordinal);
        Assert.Contains("line 7 'G90 G1 X250 Y10 F6000': ALARM:2", text, StringComparison.Ordinal);
        Assert.Contains("2 lines after it were not checked", text, StringComparison.Ordinal);

        // Nothing moved; the soft-limit lock was cleared because the homed position still holds.
        Assert.Equal(0, MotionsOtherThanHoming(rig));
        Assert.True(report.Unlocked);
        var status = await rig.Client.QueryStatusAsync(CancellationToken.None).WaitAsync(Timeout);
        Assert.Equal("Idle", status.State);
        Assert.Equal(rig.Profile.HomePosition, status.MachinePosition);
        Assert.True(rig.Connection.IsHomed);
        Assert.True((await rig.Client.ExecuteAsync("G90 G0 Y7", CancellationToken.None).WaitAsync(Timeout)).Ok);
        Assert.True((await rig.Client.ExecuteAsync("G4 P0", CancellationToken.None).WaitAsync(Timeout)).Ok);
        Assert.Equal(7, rig.Simulator.Position.Y, 6);
    }

    [Fact]
    public async Task Without_the_unlock_option_the_machine_stays_alarm_locked_after_a_soft_limit()
    {
        await using var rig = await SimRig.StartAsync(profile: TestProfiles.SimOrigin());
        var options = new CheckModeOptions { UnlockAfterSoftLimit = false };
        var report = await CheckMode.RunAsync(rig.Client, ["G90 G1 X10 Y250 F6000"], options, CancellationToken.None).WaitAsync(Timeout);

        Assert.Equal(1, report.Alarm?.LineNumber);
        Assert.False(report.Unlocked);
        Assert.Equal("Alarm", (await rig.Client.QueryStatusAsync(CancellationToken.None).WaitAsync(Timeout)).State);
    }

    [Fact]
    public async Task An_alarm_locked_machine_refuses_check_mode_and_nothing_is_streamed()
    {
        await using var rig = await SimRig.StartAsync(home: false);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => CheckMode.RunAsync(rig.Client, ["G90 G0 X10"], CancellationToken.None)).WaitAsync(Timeout);
        Assert.Contains("Alarm", e.Message, StringComparison.Ordinal);
        Assert.Equal("Alarm", rig.Simulator.State);
        Assert.Empty(rig.Simulator.MotionRecord);
    }

    [Fact]
    public async Task A_refused_send_stops_the_check_and_the_firmware_still_leaves_check_mode()
    {
        await using var rig = await SimRig.StartAsync(profile: TestProfiles.SimOrigin());
        var sent = 0;
        var options = new CheckModeOptions
        {
            // As the safety gate does once an e-stop began.
            Send = (client, line, ct) => ++sent <= 2 ? client.SendLineAsync(line, ct) : throw new MotionRefusedException("emergency stop is latched"),
        };

        var report = await CheckMode.RunAsync(rig.Client, ["G90 G1 X1 F6000", "G90 G1 X2", "G90 G1 X3", "G90 G1 X4"], options, CancellationToken.None).WaitAsync(Timeout);

        Assert.False(report.Passed);
        Assert.Equal(2, report.LinesChecked);
        Assert.Contains("emergency stop is latched", report.Interrupted, StringComparison.Ordinal);
        Assert.Equal("Idle", (await rig.Client.QueryStatusAsync(CancellationToken.None).WaitAsync(Timeout)).State);
        Assert.Equal(0, MotionsOtherThanHoming(rig));
    }

    [Fact]
    public async Task Errors_beyond_the_listed_maximum_are_counted()
    {
        await using var rig = await SimRig.StartAsync(profile: TestProfiles.SimOrigin());
        var program = Enumerable.Range(0, 30).Select(i => i % 2 == 0 ? "G5" : "G90 G1 X1 F600").ToList();
        var report = await CheckMode.RunAsync(rig.Client, program, new CheckModeOptions { MaxListedErrors = 4 }, CancellationToken.None).WaitAsync(Timeout);

        Assert.Equal(30, report.LinesChecked);
        Assert.Equal(15, report.TotalErrors);
        Assert.Equal([1, 3, 5, 7], report.Errors.Select(e => e.LineNumber));
        Assert.Contains("and 11 more", report.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_sessions_program_is_checked_through_the_connection_and_errors_name_their_dot()
    {
        await using var rig = await SimRig.StartAsync(profile: TestProfiles.SimOrigin());
        var profile = rig.Profile;
        var aiming = new Aiming(profile, new FixedHeadPoseSource(profile.FixedHead.ToTransform(), TimeProvider.System));
        PlannedDot[] dots =
        [
            new(0, "d1", 0, 0, 0, 1.0, 100, "charcoal-1"),
            new(1, "d2", 5, -3, 0.5, 0.8, 200, "charcoal-1"),
            new(2, "far", 500, 0, 0, 1.0, 100, "charcoal-1"), // outside the envelope: not aimed
        ];
        var program = CheckMode.SessionProgram(new DotProgram(profile), aiming, dots, profile.HomePosition);

        Assert.Single(program.NotAimed);
        Assert.Contains("far", program.NotAimed[0], StringComparison.Ordinal);
        Assert.Equal(program.Lines.Count, program.DotIds.Count);
        Assert.Equal(["d1", "d2"], program.DotIds.OfType<string>().Distinct());
        Assert.Equal("G21 G90", program.Lines[0]);
        Assert.Equal("M5", program.Lines[^1]);

        var seenChecking = false;
        var options = new CheckModeOptions
        {
            Send = (client, line, ct) =>
            {
                seenChecking |= rig.Connection.IsChecking;
                return client.SendLineAsync(line, ct);
            },
        };
        var report = await CheckMode.RunAsync(rig.Connection, program.Lines, options, CancellationToken.None).WaitAsync(Timeout);
        Assert.True(report.Passed, report.Describe(program.DotIds));
        Assert.True(seenChecking);
        Assert.False(rig.Connection.IsChecking);
        Assert.Equal(0, MotionsOtherThanHoming(rig));

        // A line of d2 refused: the description names the dot.
        var broken = program.Lines.ToList();
        var firstOfD2 = program.DotIds.ToList().IndexOf("d2");
        broken[firstOfD2] = "G5";
        var failed = await CheckMode.RunAsync(rig.Connection, broken, null, CancellationToken.None).WaitAsync(Timeout);
        Assert.Contains($"line {firstOfD2 + 1} 'G5': error:20 {GrblProtocol.ErrorText(20)} (dot d2)", failed.Describe(program.DotIds), StringComparison.Ordinal);
    }
}
