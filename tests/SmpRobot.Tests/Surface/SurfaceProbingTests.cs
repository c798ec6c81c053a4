using Microsoft.Extensions.DependencyInjection;
using SmpRobot.Controller;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Storage;
using SmpRobot.Controller.Surface;
using SmpRobot.Geometry;
using SmpRobot.Tests.Integration;
using SmpRobot.Treatment.Heads;
using SmpRobot.Treatment.Mesh;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Surface;

/// <summary>
/// Probing the simulated scalp (the synthetic head, its board worn a little off where the designs assume it) with a
/// still head: the contacts, the registration against the 3 mm model, and the probe faults, checked on the
/// simulator's motion record.
/// </summary>
[Collection(ControllerCollection.Name)]
public sealed class SurfaceProbingTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private static readonly Lazy<(TriangleMesh Mesh, HeadLandmarks Landmarks)> Model = new(() => SyntheticHead.Generate(5));

    /// <summary>Where the board sits today against where the designs assume it: 2.5 mm and about 2° off.</summary>
    private static readonly RigidTransform BoardOffset = Rotations.FromRotationVector(new Vec3(1.2, -0.8, 1.5) * (Math.PI / 180), new Vec3(1.5, -2.0, 0.8));

    private static RigidTransform Nominal => SimulatedScalp.NominalHeadFromScalp(Model.Value.Landmarks);

    /// <summary>Aims: the model's skin around the top of the head (within 18° of it), where the still head faces the needle, in H.</summary>
    private static List<Vec3> AimsH(int count)
    {
        var aims = new List<Vec3>();
        for (var i = 0; i < count; i++)
        {
            var tilt = (i == 0 ? 0 : 6 + (12.0 * (i % 3) / 2)) * Math.PI / 180;
            var azimuth = 2 * Math.PI * i / Math.Max(1, count - 1);
            var d = new Vec3(Math.Sin(tilt) * Math.Cos(azimuth), Math.Sin(tilt) * Math.Sin(azimuth), Math.Cos(tilt));
            aims.Add(Nominal.Apply(Model.Value.Mesh.Raycast(Model.Value.Landmarks.Center, d)!.Value.Point));
        }
        return aims;
    }

    private static async Task<(ControllerFixture Controller, SimulatedScalp Scalp)> StartAsync(string faults = "", RigidTransform? boardOffset = null)
    {
        var scalp = SimulatedScalp.SyntheticHead(boardOffset ?? BoardOffset);
        var simulator = new SimulatedGantry(ControllerFixture.Profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 50, Skin = scalp, Faults = FaultPlan.Parse(faults) });
        var c = await ControllerFixture.StartAsync(simulator);
        await c.HomeAsync();
        return (c, scalp);
    }

    private static SurfaceProbing Probing(ControllerFixture c) => c.Services.GetRequiredService<SurfaceProbing>();

    [Fact]
    public async Task Probing_a_patch_registers_the_model_where_the_skin_really_is_and_the_needle_never_goes_past_the_bound()
    {
        var (c, scalp) = await StartAsync();
        await using var _ = c;
        var options = new SurfaceProbeOptions();

        var outcome = await Probing(c).ProbeAsync(Model.Value.Mesh, "model-sha", Nominal, AimsH(13), null, 0, options, CancellationToken.None).WaitAsync(Timeout);

        Assert.True(outcome.Record.Valid, outcome.Record.Notes);
        Assert.Equal(13, outcome.Contacts.Count);
        Assert.InRange(outcome.Record.RmsMm, 0, options.MaxRmsMm);
        // Each contact is on the real skin (within a Z step and the probe's stop), seen from the gantry.
        Assert.All(outcome.Contacts, p => Assert.InRange(p.ContactG.Z - scalp.SkinZMm(p.ContactG.X, p.ContactG.Y, 0)!.Value, -0.01, 0.01));
        // The registered model surface lies on the real skin over the patch: within the 0.05 mm.
        var worst = AimsH(13).Select(aim => SurfaceGapMm(scalp, outcome.HeadFromScalp, aim)).Max();
        Assert.InRange(worst, 0, 0.05);
        var nominalWorst = AimsH(13).Select(aim => SurfaceGapMm(scalp, Nominal, aim)).Max();
        Assert.True(nominalWorst > 0.5, $"the nominal placement was only {nominalWorst:0.000} mm off: the test would prove nothing");

        // On the motion record: probe moves only, each from its start down by at most approach + beyond, needle drive off.
        var probes = c.Simulator.MotionRecord.Where(m => m.Kind == SimMotionKind.Probe && m.Line.StartsWith("G38.2", StringComparison.Ordinal)).ToList();
        Assert.Equal(13, probes.Count);
        Assert.All(probes, m => Assert.InRange(m.From.Z - m.To.Z, 0, options.ApproachMm + options.BeyondMm + 1e-9));
        Assert.All(probes, m => Assert.False(m.SpindleOn));
        Assert.DoesNotContain(c.Simulator.SpindleLog, s => s.On);
        // Every other move (travel, the watched descents, the lifts) stays above the real skin all along.
        AssertAboveSkin(c, scalp);
        Assert.Equal(outcome.Record, c.Services.GetRequiredService<LedgerStore>().FindSurfaceRegistration(outcome.Record.Id));
        Assert.Equal("Idle", c.Simulator.State);
    }

    /// <summary>
    /// Every non-probe move, sampled along its path, keeps the needle tip above the real skin. A lift starts where a
    /// probe or a watched descent stopped, past its contact by the descent's braking distance v²/2a (0.02 mm at
    /// 240 mm/min on this profile): that much, and a micrometre, is allowed.
    /// </summary>
    private static void AssertAboveSkin(ControllerFixture c, SimulatedScalp scalp)
    {
        var v = new SurfaceProbeOptions().DescentFeedMmPerMin / 60;
        var braking = (v * v / (2 * ControllerFixture.Profile.AccelerationMmPerS2[2])) + 0.001;
        foreach (var m in c.Simulator.MotionRecord.Where(m => m.Kind is SimMotionKind.Feed or SimMotionKind.Rapid))
        {
            for (var k = 0; k <= 10; k++)
            {
                var p = m.From + ((m.To - m.From) * (k / 10.0));
                if (scalp.SkinZMm(p.X, p.Y, m.StartSimSeconds) is { } skin) Assert.True(p.Z > skin - braking, $"{m.Line} passes {skin - p.Z:0.000} mm into the skin at {p}");
            }
        }
    }

    [Fact]
    public async Task Skin_higher_than_the_model_puts_it_is_touched_on_the_way_down_reported_and_never_pressed()
    {
        // The board sits 3.5 mm lower on the head than the design assumed: the skin is higher than the approach allows for.
        var (c, scalp) = await StartAsync(boardOffset: Rotations.FromRotationVector(Vec3.Zero, new Vec3(0, 0, 3.5)));
        await using var __ = c;

        var e = await Assert.ThrowsAsync<SurfaceProbeRefusedException>(() => Probing(c).ProbeAsync(Model.Value.Mesh, "model-sha", Nominal, AimsH(8), null, 0, new SurfaceProbeOptions(), CancellationToken.None).WaitAsync(Timeout));

        Assert.Contains("touched skin", e.Message, StringComparison.Ordinal);
        Assert.True(e.SkinOrProbeInDoubt);
        Assert.Contains("the skin is higher than expected there (the head model and its placement", e.Message, StringComparison.Ordinal);
        AssertAboveSkin(c, scalp);
        Assert.Equal("Idle", c.Simulator.State);
        Assert.Empty(c.Services.GetRequiredService<LedgerStore>().ListSurfaceRegistrations(null));
    }

    /// <summary>The gap between the fitted model and the real skin at the model point nearest <paramref name="aimH"/>, mm.</summary>
    private static double SurfaceGapMm(SimulatedScalp scalp, RigidTransform fitted, Vec3 aimH)
    {
        var onModel = Model.Value.Mesh.ClosestPoint(Rotations.Inverse(fitted).Apply(aimH), 20)!.Value.Point;
        var modelH = fitted.Apply(onModel);
        return scalp.Skin.ClosestPoint(Rotations.Inverse(scalp.HeadFromScalp).Apply(modelH), 20)!.Value.DistanceMm;
    }

    [Fact]
    public async Task A_cut_probe_wire_refuses_with_the_reason_the_needle_went_only_the_bounded_distance_and_is_back_up()
    {
        // Cut from the start: the watched descent to the first probe's start touches nothing anyway (it stays above the
        // skin), then the probe itself runs blind.
        var (c, _) = await StartAsync("probe-cut=1");
        await using var __ = c;
        var options = new SurfaceProbeOptions();

        var e = await Assert.ThrowsAsync<SurfaceProbeRefusedException>(() => Probing(c).ProbeAsync(Model.Value.Mesh, "model-sha", Nominal, AimsH(8), null, 0, options, CancellationToken.None).WaitAsync(Timeout));

        Assert.Contains("surface probe 1", e.Message, StringComparison.Ordinal);
        Assert.Contains("ALARM:5", e.Message, StringComparison.Ordinal);
        Assert.True(e.SkinOrProbeInDoubt);
        Assert.Contains("nothing was stored", e.Message, StringComparison.Ordinal);
        var third = c.Simulator.MotionRecord.Single(m => m.Kind == SimMotionKind.Probe && m.Line.StartsWith("G38.2", StringComparison.Ordinal));
        Assert.True(third.Completed); // it ran its whole distance…
        Assert.Equal(options.ApproachMm + options.BeyondMm, third.From.Z - third.To.Z, 3); // …and not a step further
        Assert.Equal("Idle", c.Simulator.State); // unlocked
        Assert.Equal(third.From.Z, c.Simulator.Position.Z, 3); // back up at the probe's start
        Assert.Empty(c.Services.GetRequiredService<LedgerStore>().ListSurfaceRegistrations(null));
    }

    /// <summary>A tracked head that flinches as the needle head touches it: its speed jumps while the needle is at the skin.</summary>
    private sealed class FlinchingHead(RigidTransform pose, SimulatedGantry gantry, SimulatedScalp scalp) : SmpRobot.Vision.IHeadPoseSource
    {
        public string Description => "test:flinching";

        public bool IsTracking => true;

        public TimeProvider Clock => TimeProvider.System;

        public HeadPoseSample? Latest(TimeSpan lookAhead = default)
        {
            var tip = gantry.Position;
            var touching = scalp.SkinZMm(tip.X, tip.Y, 0) is { } skin && tip.Z - skin < 0.3;
            return new HeadPoseSample(pose, TimeProvider.System.GetTimestamp(), 1.0, touching ? 20 : 0);
        }

        public event EventHandler? PoseUpdated { add { } remove { } }
    }

    [Fact]
    public async Task A_head_that_moves_while_the_needle_touches_it_refuses_with_the_reason_and_the_needle_is_back_up()
    {
        var scalp = SimulatedScalp.SyntheticHead(BoardOffset);
        var simulator = new SimulatedGantry(ControllerFixture.Profile, TimeProvider.System, new SimulatedGantryOptions { TimeScale = 50, Skin = scalp });
        var pose = ControllerFixture.Profile.FixedHead.ToTransform();
        await using var c = await ControllerFixture.StartAsync(simulator, headPose: _ => new FlinchingHead(pose, simulator, scalp));
        scalp.GantryFromHeadAt = _ => pose;
        await c.HomeAsync();

        var e = await Assert.ThrowsAsync<SurfaceProbeRefusedException>(() => Probing(c).ProbeAsync(Model.Value.Mesh, "model-sha", Nominal, AimsH(8), null, 0, new SurfaceProbeOptions(), CancellationToken.None).WaitAsync(Timeout));

        Assert.Contains("surface probe 1: the head moved at 20.0 mm/s while the needle touched it", e.Message, StringComparison.Ordinal);
        Assert.False(e.SkinOrProbeInDoubt); // nothing learnt of the skin: a session's re-check would hold without withdrawing
        Assert.Contains("nothing was stored", e.Message, StringComparison.Ordinal);
        Assert.Single(c.Simulator.MotionRecord, m => m.Kind == SimMotionKind.Probe && m.Line.StartsWith("G38.2", StringComparison.Ordinal));
        AssertAboveSkin(c, scalp);
        Assert.True(c.Simulator.Position.Z - scalp.SkinZMm(c.Simulator.Position.X, c.Simulator.Position.Y, 0)!.Value > 1, "the needle is not back up");
        Assert.Equal("Idle", c.Simulator.State);
        Assert.Empty(c.Services.GetRequiredService<LedgerStore>().ListSurfaceRegistrations(null));
    }

    [Fact]
    public async Task A_probe_reading_touch_before_it_moves_refuses_and_nothing_goes_down()
    {
        var (c, _) = await StartAsync("probe-stuck=1");
        await using var __ = c;

        var e = await Assert.ThrowsAsync<SurfaceProbeRefusedException>(() => Probing(c).ProbeAsync(Model.Value.Mesh, "model-sha", Nominal, AimsH(8), null, 0, new SurfaceProbeOptions(), CancellationToken.None).WaitAsync(Timeout));

        Assert.Contains("ALARM:4", e.Message, StringComparison.Ordinal);
        Assert.True(e.SkinOrProbeInDoubt);
        Assert.Contains("shorted or its switch stuck", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(c.Simulator.MotionRecord, m => m.Kind == SimMotionKind.Probe);
        Assert.Equal("Idle", c.Simulator.State);
    }

    [Fact]
    public async Task A_model_of_another_head_is_stored_as_not_valid_saying_why()
    {
        var (c, _) = await StartAsync();
        await using var __ = c;
        // Another person's head model: longer and narrower (a uniformly larger head would still fit a patch this small).
        var other = new TriangleMesh(Model.Value.Mesh.Vertices.Select(v => new Vec3(v.X * 0.85, v.Y * 1.2, v.Z)).ToList(), Model.Value.Mesh.Indices.ToList());

        var outcome = await Probing(c).ProbeAsync(other, "other-sha", Nominal, AimsH(13), null, 0, new SurfaceProbeOptions(), CancellationToken.None).WaitAsync(Timeout);

        Assert.False(outcome.Record.Valid);
        Assert.Contains("does not fit the contacts", outcome.Record.Notes, StringComparison.Ordinal);
        Assert.False(c.Services.GetRequiredService<LedgerStore>().FindSurfaceRegistration(outcome.Record.Id)!.Valid);
    }

    [Fact]
    public async Task Too_few_points_or_a_run_past_one_line_are_refused_before_anything_moves()
    {
        var (c, _) = await StartAsync();
        await using var __ = c;
        var before = c.Simulator.MotionRecord.Count;

        await Assert.ThrowsAsync<RefusedException>(() => Probing(c).ProbeAsync(Model.Value.Mesh, "m", Nominal, AimsH(3), null, 0, new SurfaceProbeOptions(), CancellationToken.None));
        await Assert.ThrowsAsync<RefusedException>(() => Probing(c).ProbeAsync(Model.Value.Mesh, "m", Nominal, AimsH(8), null, 0, new SurfaceProbeOptions { BeyondMm = 8 }, CancellationToken.None));

        Assert.Equal(before, c.Simulator.MotionRecord.Count);
    }
}
