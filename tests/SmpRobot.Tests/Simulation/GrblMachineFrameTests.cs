using System.Globalization;
using SmpRobot.Geometry;
using SmpRobot.Machine;

namespace SmpRobot.Tests.Simulation;

/// <summary>
/// The machine frame of real grbl 1.1 (limits.c and system.c, read by hand; its documentation's
/// "machine space is all negative"): where homing ends and where soft limits lie for each homing
/// direction mask ($23), with and without HOMING_FORCE_SET_ORIGIN. The profile computes it and the
/// simulator must behave as the firmware does with the same settings.
/// </summary>
public class GrblMachineFrameTests
{
    // 200 x 200 x 40 mm travel, pull-off 1 mm (the bundled profiles).
    [Theory]
    [InlineData(0, false, -1, -1, -1, -200, 0, -200, 0)]     // default build, homing to +X +Y +Z
    [InlineData(3, false, -199, -199, -1, -200, 0, -200, 0)] // homing to -X -Y: still all negative
    [InlineData(1, false, -199, -1, -1, -200, 0, -200, 0)]
    [InlineData(3, true, 0, 0, 0, 0, 200, 0, 200)]           // HOMING_FORCE_SET_ORIGIN: the side homed from
    [InlineData(0, true, 0, 0, 0, -200, 0, -200, 0)]
    public void Home_and_envelope_follow_grbls_rules(int mask, bool forceOrigin, double homeX, double homeY, double homeZ, double minX, double maxX, double minY, double maxY)
    {
        var profile = TestProfiles.Sim() with { HomingDirectionMask = mask, HomingForceSetOrigin = forceOrigin };
        profile.Check();

        Assert.Equal(new Vec3(homeX, homeY, homeZ), profile.HomePosition);
        var (min, max) = profile.Envelope;
        Assert.Equal(new Vec3(minX, minY, -40), min);
        Assert.Equal(new Vec3(maxX, maxY, 0), max);
        Assert.True(profile.InEnvelope(profile.HomePosition));
        // The switch is one pull-off beyond home, towards where the axis homed.
        var sw = profile.HomingSwitchPosition;
        Assert.Equal(homeX + ((mask & 1) != 0 ? -1 : 1), sw.X, 9);
        Assert.Equal(homeZ + 1, sw.Z, 9);
    }

    [Fact]
    public void A_profile_that_homes_z_down_or_soft_limits_without_homing_is_refused()
    {
        var down = Assert.Throws<InvalidDataException>(() => (TestProfiles.Sim() with { HomingDirectionMask = 4 }).Check());
        Assert.Contains("home Z up", down.Message, StringComparison.Ordinal);
        var noHoming = Assert.Throws<InvalidDataException>(() => (TestProfiles.Sim() with { HomingEnabled = false }).Check());
        Assert.Contains("error:10", noHoming.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("sim.json")]
    [InlineData("sim-origin.json")]
    [InlineData("desk-200.json")]
    public void Bundled_profiles_keep_the_head_the_calibration_volume_and_home_inside_their_envelope(string file)
    {
        var profile = MachineProfile.Load(Path.Combine(TestProfiles.RepoRoot, "hardware", "profiles", file));
        var head = profile.FixedHead.ToTransform().Apply(Vec3.Zero);
        Assert.True(profile.InEnvelope(head), $"{file}: the fixed head {head} is outside {profile.EnvelopeText()}");
        Assert.True(profile.InEnvelope(head + new Vec3(0, 0, 15)), $"{file}: no room above the head");
        if (profile.Tracking.CalibrationVolume is { } v)
        {
            Assert.True(profile.InEnvelope(new Vec3(v.MinMm.X, v.MinMm.Y, v.MinMm.Z)) && profile.InEnvelope(new Vec3(v.MaxMm.X, v.MaxMm.Y, v.MaxMm.Z)), $"{file}: calibration volume outside {profile.EnvelopeText()}");
        }
        Assert.True(profile.InEnvelope(profile.HomePosition));
    }

    [Fact]
    public async Task Default_build_homes_to_minus_the_pull_off_and_a_positive_target_is_a_soft_limit_alarm_that_keeps_position()
    {
        await using var link = await SimLink.OpenAsync(TestProfiles.Sim());
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        // Before homing the counters start at 0 wherever the machine stands.
        Assert.StartsWith("<Alarm|MPos:0.000,0.000,0.000|", await link.StatusAsync(), StringComparison.Ordinal);

        await link.HomeAsync();
        Assert.StartsWith("<Idle|MPos:-1.000,-1.000,-1.000|", await link.StatusAsync(), StringComparison.Ordinal);
        Assert.Equal(link.Gantry.Profile.HomePosition, link.Gantry.Position);
        // The last homing moves: locate onto the switches (one pull-off beyond home), then pull off.
        var homing = link.Gantry.MotionRecord;
        Assert.Equal(new Vec3(0, 0, -1), homing[^2].To);
        Assert.Equal(new Vec3(-1, -1, -1), homing[^1].To);

        Assert.Equal("ok", await link.AckAsync("G90 G0 X-100 Y-100"));
        link.AdvanceSim(10);
        Assert.Equal(new Vec3(-100, -100, -1), link.Gantry.Position);

        // grbl 1.1h: $22=1, $20=1, G0 X100 Y100 -> ALARM:2, nothing moves, locked until reset.
        await link.SendAsync("G0 X100 Y100");
        var alarm = await link.ReadUntilAsync(l => l.StartsWith("ALARM", StringComparison.Ordinal));
        Assert.Equal("ALARM:2", alarm[^1]);
        link.AdvanceSim(10);
        Assert.Equal(new Vec3(-100, -100, -1), link.Gantry.Position);
    }

    [Fact]
    public async Task A_jog_beyond_the_envelope_is_error_15_in_each_frame()
    {
        await using var negative = await SimLink.OpenAsync(TestProfiles.Sim());
        await negative.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await negative.HomeAsync();
        Assert.Equal("error:15", await negative.AckAsync("$J=G90 X10 F600"));
        Assert.Equal("error:15", await negative.AckAsync("$J=G91 Z2 F600"));
        Assert.Equal("ok", await negative.AckAsync("$J=G91 X-10 F600"));

        await using var origin = await SimLink.OpenAsync(TestProfiles.SimOrigin());
        await origin.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await origin.HomeAsync();
        Assert.StartsWith("<Idle|MPos:0.000,0.000,0.000|", await origin.StatusAsync(), StringComparison.Ordinal);
        Assert.Equal("error:15", await origin.AckAsync("$J=G91 X-1 F600"));
        Assert.Equal("error:15", await origin.AckAsync("$J=G91 Z1 F600"));
        Assert.Equal("ok", await origin.AckAsync("$J=G91 X10 Z-5 F600"));
    }

    [Fact]
    public async Task Settings_are_written_as_grbl_takes_them_and_soft_limits_need_homing()
    {
        await using var link = await SimLink.OpenAsync(TestProfiles.Sim());
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.CommandAsync("$X");
        Assert.Equal("ok", await link.AckAsync("$22=0"));
        Assert.False(link.Gantry.Profile.SoftLimits); // $22=0 turns soft limits off too
        Assert.Equal("error:10", await link.AckAsync("$20=1"));
        Assert.Equal("ok", await link.AckAsync("$22=1"));
        Assert.Equal("ok", await link.AckAsync("$20=1"));
        Assert.Equal("ok", await link.AckAsync("$23=3"));
        Assert.Equal("ok", await link.AckAsync("$27=2.5"));
        Assert.Equal("error:4", await link.AckAsync("$27=-1"));
        Assert.Equal("error:2", await link.AckAsync("$27=abc"));
        Assert.Equal("error:3", await link.AckAsync("$999=1"));
        var report = await link.CommandAsync("$$");
        Assert.Contains("$23=3", report);
        Assert.Contains("$27=2.500", report);
        Assert.Contains("$10=3", report);

        // Homing with the new settings ends where grbl's rules put it: -max + pull-off on X and Y.
        await link.HomeAsync();
        var status = await link.StatusAsync();
        Assert.StartsWith("<Idle|MPos:" + string.Join(",", new[] { -197.5, -197.5, -2.5 }.Select(v => v.ToString("0.000", CultureInfo.InvariantCulture))) + "|", status, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failed_homing_cycle_answers_the_alarm_the_ok_then_the_banner()
    {
        await using var link = await SimLink.OpenAsync(TestProfiles.Sim(), options: new SmpRobot.Controller.Gantry.Simulation.SimulatedGantryOptions { Faults = SmpRobot.Controller.Gantry.Simulation.FaultPlan.Parse("homing-fail=9") });
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.SendAsync("$H");
        await link.SettleAsync();
        link.AdvanceSim(120);
        var lines = await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        Assert.Equal(["ALARM:9", "ok", "Grbl 1.1h ['$' for help]", "[MSG:'$H'|'$X' to unlock]"], lines);
        Assert.False(link.Gantry.Homed);
        Assert.Equal("Alarm", link.Gantry.State);
    }
}
