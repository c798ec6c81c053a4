using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Geometry;

namespace SmpRobot.Tests.Simulation;

/// <summary>
/// grbl 1.1's probe cycle (G38.2/G38.3) on the simulator, against a skin under the needle: the contact, the
/// motion cancel past it, the [PRB:…] report before the ok, ALARM:4 and ALARM:5, and the probe-wire faults.
/// The sim-origin profile: home (0, 0, 0), Z in [−40, 0], 800 steps/mm on Z.
/// </summary>
public class SimulatedProbeTests
{
    private const double StepZ = 1.0 / 800;

    /// <summary>A flat skin at <see cref="Z"/> under x in [0, 100], nothing elsewhere.</summary>
    private sealed class FlatSkin(double z) : ISimulatedSkin
    {
        public double Z { get; } = z;
        public double? SkinZMm(double xMm, double yMm, double simSeconds) => xMm is >= 0 and <= 100 ? Z : null;
    }

    /// <summary>A skin that rises and falls by <see cref="AmplitudeMm"/> at 0.25 Hz around <see cref="BaseZ"/> (breathing).</summary>
    private sealed class SwayingSkin(double baseZ, double amplitudeMm) : ISimulatedSkin
    {
        public double BaseZ { get; } = baseZ;
        public double AmplitudeMm { get; } = amplitudeMm;
        public double At(double simSeconds) => BaseZ + (AmplitudeMm * Math.Sin(2 * Math.PI * 0.25 * simSeconds));
        public double? SkinZMm(double xMm, double yMm, double simSeconds) => At(simSeconds);
    }

    private static async Task<SimLink> HomedAsync(ISimulatedSkin? skin, string faults = "")
    {
        var link = await SimLink.OpenAsync(options: new SimulatedGantryOptions { Skin = skin, Faults = FaultPlan.Parse(faults) });
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.HomeAsync();
        Assert.Equal("ok", await link.AckAsync("G90 G0 X50 Y50 Z-8"));
        await link.SettleAsync();
        link.AdvanceSim(10);
        Assert.Equal("ok", await link.AckAsync("G4 P0"));
        return link;
    }

    /// <summary>Sends a probe line, lets the cycle run, and returns the lines up to its answer.</summary>
    private static async Task<List<string>> ProbeAsync(SimLink link, string line, double runSeconds = 30)
    {
        await link.SendAsync(line);
        // Answers that come at once (a refusal, ALARM:4) arrive before the settle's status report.
        var lines = (await link.SettleAsync()).Where(l => !l.StartsWith('<')).ToList();
        if (lines.Any(SimLink.IsAck)) return lines;
        link.AdvanceSim(runSeconds);
        lines.AddRange(await link.ReadUntilAsync(SimLink.IsAck));
        return lines;
    }

    private static (Vec3 Position, bool Contact) Prb(IEnumerable<string> lines)
    {
        var text = Assert.Single(lines, l => l.StartsWith("[PRB:", StringComparison.Ordinal));
        Assert.True(GrblProtocol.TryParseProbe(text, 0, out var report), text);
        return (report!.MachineMm, report.Contact);
    }

    [Fact]
    public async Task A_probe_stops_at_the_skin_reports_the_contact_before_its_ok_and_goes_on_from_where_it_stopped()
    {
        var skin = new FlatSkin(-10.4);
        await using var link = await HomedAsync(skin);

        var lines = await ProbeAsync(link, "G38.2 G91 Z-5 F60");

        Assert.Equal("ok", lines[^1]);
        Assert.True(lines.IndexOf(lines.Single(l => l.StartsWith("[PRB:", StringComparison.Ordinal))) < lines.Count - 1, "the report comes before the ok");
        var (contact, touched) = Prb(lines);
        Assert.True(touched);
        Assert.Equal(50, contact.X, 6);
        Assert.InRange(contact.Z, skin.Z - StepZ, skin.Z + StepZ);
        Assert.Equal("Idle", link.Gantry.State);
        // Motion cancel: the needle decelerates past the contact (slow feed: a few micrometres), never to the target.
        var probe = link.Gantry.MotionRecord.Single(m => m.Kind == SimMotionKind.Probe);
        Assert.False(probe.Completed);
        Assert.InRange(probe.To.Z, skin.Z - 0.05, contact.Z);
        Assert.Equal(probe.To, link.Gantry.Position);

        // The parser takes the stopped position: a relative move goes from there, and $G shows the probe mode.
        Assert.Equal("ok", await link.AckAsync("G91 G0 Z2"));
        await link.SettleAsync();
        link.AdvanceSim(5);
        Assert.Equal("ok", await link.AckAsync("G4 P0"));
        Assert.Equal(probe.To.Z + 2, link.Gantry.Position.Z, 3);
        Assert.Contains(await link.CommandAsync("$G"), l => l.StartsWith("[GC:G0 ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task On_a_breathing_head_the_contact_is_where_the_skin_was_at_that_moment()
    {
        var skin = new SwayingSkin(-10.4, 0.5);
        await using var link = await HomedAsync(skin);

        var lines = await ProbeAsync(link, "G38.2 G91 Z-5 F30");

        var (contact, touched) = Prb(lines);
        Assert.True(touched);
        var probe = link.Gantry.MotionRecord.Single(m => m.Kind == SimMotionKind.Probe);
        // Find the moment the tip passed the contact height (the move is at constant speed there) and compare with the skin then.
        var speedMmPerS = 30 / 60.0;
        var contactTime = probe.StartSimSeconds + ((probe.From.Z - contact.Z) / speedMmPerS);
        Assert.InRange(contact.Z, skin.At(contactTime) - 0.01, skin.At(contactTime) + 0.01);
        Assert.NotEqual(skin.BaseZ, contact.Z, 2); // it moved, and the probe met it where it was
    }

    [Fact]
    public async Task A_probe_that_touches_nothing_runs_its_distance_and_alarms_with_the_position_kept()
    {
        await using var link = await HomedAsync(new FlatSkin(-30));

        var lines = await ProbeAsync(link, "G38.2 G91 Z-3 F120");

        Assert.Equal(["ALARM:5", "[PRB:50.000,50.000,-11.000:0]", "ok"], lines);
        Assert.Equal("Alarm", link.Gantry.State);
        Assert.Equal(-11, link.Gantry.Position.Z, 6);
        Assert.True(link.Gantry.MotionRecord.Single(m => m.Kind == SimMotionKind.Probe).Completed);
        Assert.Equal("error:9", await link.AckAsync("G91 G0 Z1")); // locked until $X
        Assert.Equal(["[MSG:Caution: Unlocked]", "ok"], await link.CommandAsync("$X"));
        Assert.True(link.Gantry.Homed); // ALARM:5 keeps the position (unlike a hard limit)
    }

    [Fact]
    public async Task G38_3_without_contact_reports_it_and_does_not_alarm()
    {
        await using var link = await HomedAsync(new FlatSkin(-30));

        var lines = await ProbeAsync(link, "G38.3 G91 Z-3 F120");

        Assert.Equal(["[PRB:50.000,50.000,-11.000:0]", "ok"], lines);
        Assert.Equal("Idle", link.Gantry.State);
    }

    [Fact]
    public async Task A_probe_already_touching_alarms_at_once_and_does_not_move()
    {
        await using var link = await HomedAsync(new FlatSkin(-7));

        var lines = await ProbeAsync(link, "G38.2 G91 Z-3 F60");

        Assert.Equal(["ALARM:4", "ok"], lines);
        Assert.Equal("Alarm", link.Gantry.State);
        Assert.DoesNotContain(link.Gantry.MotionRecord, m => m.Kind == SimMotionKind.Probe);
        Assert.Equal(-8, link.Gantry.Position.Z, 6);
    }

    [Fact]
    public async Task A_stuck_probe_input_alarms_before_moving_and_a_cut_wire_runs_the_whole_distance()
    {
        await using (var stuck = await HomedAsync(new FlatSkin(-10), "probe-stuck=1"))
        {
            Assert.Equal(["ALARM:4", "ok"], await ProbeAsync(stuck, "G38.2 G91 Z-3 F60"));
            Assert.Contains(stuck.Gantry.FaultLog, f => f.Fault == "probe-stuck");
            Assert.DoesNotContain(stuck.Gantry.MotionRecord, m => m.Kind == SimMotionKind.Probe);
        }

        await using var cut = await HomedAsync(new FlatSkin(-10), "probe-cut=2");
        var first = await ProbeAsync(cut, "G38.2 G91 Z-3 F60");
        Assert.True(Prb(first).Contact);
        Assert.Equal("ok", await cut.AckAsync("G91 G0 Z2"));
        cut.AdvanceSim(5);
        Assert.Equal("ok", await cut.AckAsync("G4 P0"));
        var start = cut.Gantry.Position.Z;

        var second = await ProbeAsync(cut, "G38.2 G91 Z-3 F60");

        Assert.Equal("ALARM:5", second[0]);
        Assert.False(Prb(second).Contact);
        // The needle went exactly the bounded distance, into the skin, and no further.
        Assert.Equal(start - 3, cut.Gantry.Position.Z, 6);
        Assert.Contains(cut.Gantry.FaultLog, f => f.Fault == "probe-cut");
    }

    [Theory]
    [InlineData("G38.2 F60", "error:26")]         // no target
    [InlineData("G38.2 G91 Z0 F60", "error:37")]  // the target is where it is
    [InlineData("G38.1 Z-1 F60", "error:20")]     // not a probe cycle grbl knows
    [InlineData("G38.2 G1 Z-1 F60", "error:21")]  // two motion modes
    [InlineData("G38.2 G53 Z-1 F60", "error:30")] // not in machine coordinates
    public async Task Bad_probe_lines_are_refused_and_nothing_moves(string line, string error)
    {
        await using var link = await HomedAsync(new FlatSkin(-10));
        var before = link.Gantry.MotionRecord.Count;

        Assert.Equal(error, await link.AckAsync(line));

        Assert.Equal(before, link.Gantry.MotionRecord.Count);
        Assert.Equal("Idle", link.Gantry.State);
    }

    [Fact]
    public async Task A_probe_without_a_feed_rate_is_refused()
    {
        await using var link = await SimLink.OpenAsync(options: new SimulatedGantryOptions { Skin = new FlatSkin(-10) });
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.HomeAsync();
        Assert.Equal("error:22", await link.AckAsync("G38.2 G91 Z-1"));
    }

    [Fact]
    public async Task In_check_mode_a_probe_is_parsed_and_nothing_moves()
    {
        await using var link = await HomedAsync(new FlatSkin(-10));
        await link.CommandAsync("$C");
        var before = link.Gantry.MotionRecord.Count;

        Assert.Equal(["ok"], await link.CommandAsync("G38.2 G91 Z-3 F60"));

        Assert.Equal(before, link.Gantry.MotionRecord.Count);
    }

    [Theory]
    [InlineData("[PRB:1.000,-2.500,-10.125:1]", 1.0, -2.5, -10.125, true)]
    [InlineData("[PRB:0.000,0.000,0.000:0]", 0.0, 0.0, 0.0, false)]
    [InlineData("[PRB:1.000,2.000,3.000,4.000:1]", 1.0, 2.0, 3.0, true)] // grblHAL with a fourth axis
    public void Probe_reports_parse(string line, double x, double y, double z, bool contact)
    {
        Assert.True(GrblProtocol.TryParseProbe(line, 42, out var report));
        Assert.Equal(new Vec3(x, y, z), report!.MachineMm);
        Assert.Equal(contact, report.Contact);
        Assert.Equal(42, report.ReceivedTimestamp);
    }

    [Theory]
    [InlineData("[PRB:1.000,2.000:1]")]
    [InlineData("[PRB:1.000,2.000,x:1]")]
    [InlineData("[PRB:1.000,2.000,3.000:2]")]
    [InlineData("[PRB:1.000,2.000,3.000]")]
    [InlineData("[MSG:PRB:1,2,3:1]")]
    [InlineData("[PRB:1.000,2.000,3.000:1")]
    public void Malformed_probe_reports_are_not_probe_reports(string line)
    {
        Assert.False(GrblProtocol.TryParseProbe(line, 0, out var report));
        Assert.Null(report);
    }
}
