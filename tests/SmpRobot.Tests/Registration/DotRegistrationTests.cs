using SmpRobot.Geometry;
using SmpRobot.Tests.Treatment;
using SmpRobot.Treatment.Heads;
using SmpRobot.Treatment.Mesh;
using SmpRobot.Treatment.Registration;

namespace SmpRobot.Tests.Registration;

/// <summary>
/// The synthetic head at its designs' nominal T_HS, a camera 110 mm above the vertex, record dots spread around the
/// vertex (a board over the vertex hides the middle), the observations made from the true dots as rays.
/// </summary>
internal sealed class RegistrationWorld
{
    private static readonly Lazy<(TriangleMesh Mesh, HeadLandmarks Landmarks)> Head = new(() => SyntheticHead.Generate());

    public RegistrationWorld()
    {
        Skin = Head.Value.Mesh;
        var l = Head.Value.Landmarks;
        Nominal = new RigidTransform(1, 0, 0, 0, 1, 0, 0, 0, 1, new Vec3(0, 0, -(l.Vertex - l.Center).Length) - l.Center);
        CentreH = Nominal.Apply(l.Center);
    }

    public TriangleMesh Skin { get; }

    public RigidTransform Nominal { get; }

    public Vec3 CentreH { get; }

    public static Vec3 CameraH => new(3, -2, 110);

    /// <summary>Dots at least <paramref name="spacingMm"/> apart (dart throwing, seeded) on the skin under the view, frame S.</summary>
    public List<RecordedDot> Record(int seed, double spacingMm = 1.3, int count = 900)
    {
        var scalpFromHead = Rotations.Inverse(Nominal);
#pragma warning disable CA5394 // seeded: the test's dots are reproducible; nothing here is secret
        var rng = new Random(seed);
        var dots = new List<RecordedDot>();
        var points = new List<Vec3>();
        for (var tries = 0; dots.Count < count && tries < count * 100; tries++)
        {
            var x = (rng.NextDouble() * 80) - 40;
            var y = (rng.NextDouble() * 70) - 35;
            // The record covers more than the view, under the board too.
            if (((x / 40) * (x / 40)) + ((y / 34) * (y / 34)) >= 1) continue;
            var origin = scalpFromHead.Apply(new Vec3(x, y, 30));
            var down = scalpFromHead.Apply(new Vec3(x, y, 29)) - origin;
            if (Skin.Raycast(origin, down) is not { } hit) continue;
            if (points.Any(p => p.DistanceTo(hit.Point) < spacingMm)) continue;
            points.Add(hit.Point);
            dots.Add(new RecordedDot($"r{seed}-{dots.Count}", hit.Point, Skin.NormalAt(hit)));
        }
#pragma warning restore CA5394
        return dots;
    }

    /// <summary>The seen ring of the board's plane: outside the 40 × 34 mm sticker, inside a 68 × 56 mm ellipse.</summary>
    public static bool Ring(double x, double y)
    {
        if (Math.Abs(x) < 20 && Math.Abs(y) < 17) return false;
        var ex = x / 34;
        var ey = y / 28;
        return (ex * ex) + (ey * ey) < 1;
    }

    public static bool InView(Vec3 pH, Vec3 nH)
    {
        if (Vec3.Dot(nH, CameraH - pH) <= 0) return false;
        var t = CameraH.Z / (CameraH.Z - pH.Z);
        var onPlane = CameraH + ((pH - CameraH) * t);
        return Ring(onPlane.X, onPlane.Y);
    }

    /// <summary>The board slid along the skin (a turn about the head's centre) and turned about the vertex normal.</summary>
    public RigidTransform Slid(double slideXMm, double slideYMm, double twistDeg)
    {
        var radius = -CentreH.Z;
        var axis = Vec3.Cross(new Vec3(0, 0, 1), new Vec3(slideXMm, slideYMm, 0)) * (1 / radius);
        var turn = Rotations.Multiply(Rotations.MatrixFromVector(new Vec3(0, 0, twistDeg * Math.PI / 180)), Rotations.MatrixFromVector(axis));
        var moved = Rotations.FromMatrix(turn, Vec3.Zero).Apply(CentreH);
        return Rotations.FromMatrix(turn, CentreH - moved) * Nominal;
    }

    /// <summary>
    /// Rays to the record's dots under <paramref name="truth"/> (each moved along the skin by up to
    /// <paramref name="noiseMm"/>), every <paramref name="dropEvery"/>-th one missing, plus <paramref name="stubble"/>
    /// rays to random skin points in view.
    /// </summary>
    public static List<DotObservation> Observe(IReadOnlyList<RecordedDot> record, RigidTransform truth, int seed, double noiseMm = 0.04, int dropEvery = 10, int stubble = 1200)
    {
#pragma warning disable CA5394 // seeded: reproducible test data
        var rng = new Random(seed);
        var r = Rotations.RotationMatrix(truth);
        var rays = new List<DotObservation>();
        for (var k = 0; k < record.Count; k++)
        {
            if (k % dropEvery == 0) continue;
            var n = Rotate(r, record[k].Normal);
            var p = truth.Apply(record[k].PointMm) + new Vec3((rng.NextDouble() - 0.5) * 2 * noiseMm, (rng.NextDouble() - 0.5) * 2 * noiseMm, 0);
            if (!InView(p, n)) continue;
            rays.Add(new DotObservation(CameraH, (p - CameraH).Normalized(), 0.3));
        }
        for (var k = 0; k < stubble; k++)
        {
            var x = (rng.NextDouble() * 80) - 40;
            var y = (rng.NextDouble() * 70) - 35;
            if (!Ring(x, y)) continue;
            var target = new Vec3(x, y, 0);
            rays.Add(new DotObservation(CameraH, (target - CameraH).Normalized(), 0.15));
        }
#pragma warning restore CA5394
        return rays;
    }

    public static Vec3 Rotate(double[] r, Vec3 v) => new(
        (r[0] * v.X) + (r[1] * v.Y) + (r[2] * v.Z),
        (r[3] * v.X) + (r[4] * v.Y) + (r[5] * v.Z),
        (r[6] * v.X) + (r[7] * v.Y) + (r[8] * v.Z));

    /// <summary>
    /// What probing leaves: the nominal T_HS fitted to 16 contacts on the skin placed by <paramref name="truth"/>
    /// (height and tilt found, the slide along the skin mostly not), as the registration gets it in a session.
    /// </summary>
    public RigidTransform Probed(RigidTransform truth)
    {
        var scalpFromHead = Rotations.Inverse(truth);
        var contacts = new List<Vec3>();
        for (var gx = -1.5; gx <= 1.5; gx += 1)
        {
            for (var gy = -1.5; gy <= 1.5; gy += 1)
            {
                var above = new Vec3(gx * 16, gy * 13, 30);
                if (Skin.Raycast(scalpFromHead.Apply(above), scalpFromHead.Apply(above - new Vec3(0, 0, 1)) - scalpFromHead.Apply(above)) is { } hit) contacts.Add(truth.Apply(hit.Point));
            }
        }
        return SmpRobot.Treatment.Surface.SurfaceRegistration.Fit(Skin, contacts, Nominal).HeadFromScalp;
    }

    /// <summary>Largest displacement of the record's dots in view between two placements, mm.</summary>
    public static double MaxDisplacement(IReadOnlyList<RecordedDot> record, RigidTransform a, RigidTransform b) =>
        record.Where(d => InView(b.Apply(d.PointMm), Rotate(Rotations.RotationMatrix(b), d.Normal))).Max(d => a.Apply(d.PointMm).DistanceTo(b.Apply(d.PointMm)));
}

public sealed class DotRegistrationTests
{
    private readonly RegistrationWorld _world = new();

    [Theory]
    [InlineData(6.0, -2.0, 4.0)]
    [InlineData(-4.0, 5.5, -5.0)]
    [InlineData(0.5, 0.5, 0.0)]
    public void A_known_slide_is_recovered_despite_stubble_and_missing_dots(double xMm, double yMm, double twistDeg)
    {
        var record = _world.Record(1);
        var truth = _world.Slid(xMm, yMm, twistDeg);
        var observations = RegistrationWorld.Observe(record, truth, seed: 2);
        var initial = _world.Probed(truth);
        var result = DotRegistration.Register(record, observations, _world.Skin, initial, RegistrationWorld.InView);
        Assert.True(result.Accepted, result.RefusalReason);
        var error = RegistrationWorld.MaxDisplacement(record, result.HeadFromScalp, truth);
        Assert.True(error < 0.03, $"error {error:0.000} mm");
        Assert.InRange(result.MatchedFraction, 0.85, 0.95); // every tenth dot is missing
        Assert.True(result.ResidualRmsMm < 0.05, $"RMS {result.ResidualRmsMm:0.000} mm");
        Assert.True(result.Ambiguity < 0.3, $"ambiguity {result.Ambiguity:0.00}");
        Assert.All(result.Pairs, p => Assert.True(p.ResidualMm <= 0.35));
    }

    [Fact]
    public void The_registration_is_drawn_as_a_png()
    {
        var record = _world.Record(1);
        var truth = _world.Slid(2, 3, 1);
        var result = DotRegistration.Register(record, RegistrationWorld.Observe(record, truth, seed: 7), _world.Skin, _world.Probed(truth), RegistrationWorld.InView);
        var path = Path.Combine(Path.GetTempPath(), $"smp-dot-registration-{Environment.ProcessId}.png");
        try
        {
            SmpRobot.Treatment.Preview.DotRegistrationPicture.WritePng(result, record, "test", path);
            var bytes = File.ReadAllBytes(path);
            Assert.True(bytes.Length > 10_000);
            Assert.Equal(0x89, bytes[0]); // PNG signature
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_different_clients_record_is_refused()
    {
        var truth = _world.Slid(3, 4, 2);
        var observations = RegistrationWorld.Observe(_world.Record(1), truth, seed: 3);
        var result = DotRegistration.Register(_world.Record(99), observations, _world.Skin, _world.Nominal, RegistrationWorld.InView);
        Assert.False(result.Accepted);
        Assert.NotNull(result.RefusalReason);
    }

    [Fact]
    public void A_covered_scalp_and_too_few_dots_are_refused()
    {
        var record = _world.Record(1);
        var truth = _world.Slid(3, 4, 2);
        var stubbleOnly = RegistrationWorld.Observe(record, truth, seed: 4, dropEvery: 1);
        var covered = DotRegistration.Register(record, stubbleOnly, _world.Skin, _world.Nominal, RegistrationWorld.InView);
        Assert.False(covered.Accepted);

        var few = RegistrationWorld.Observe(record, truth, seed: 5, stubble: 0).Take(8).ToList();
        var tooFew = DotRegistration.Register(record, few, _world.Skin, _world.Nominal, RegistrationWorld.InView);
        Assert.False(tooFew.Accepted);
        Assert.Contains("too few", tooFew.RefusalReason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_periodic_pattern_is_refused_as_ambiguous()
    {
        // A hexagonal grid matches itself at every lattice step: no single placement can be trusted.
        var scalpFromHead = Rotations.Inverse(_world.Nominal);
        var record = new List<RecordedDot>();
        for (var row = -30; row <= 30; row++)
        {
            for (var col = -30; col <= 30; col++)
            {
                var x = (col + (row % 2 == 0 ? 0 : 0.5)) * 1.5;
                var y = row * 1.5 * Math.Sqrt(3) / 2;
                if (((x / 40) * (x / 40)) + ((y / 34) * (y / 34)) >= 1) continue;
                if (_world.Skin.Raycast(scalpFromHead.Apply(new Vec3(x, y, 30)), scalpFromHead.Apply(new Vec3(x, y, 29)) - scalpFromHead.Apply(new Vec3(x, y, 30))) is not { } hit) continue;
                record.Add(new RecordedDot($"g{record.Count}", hit.Point, _world.Skin.NormalAt(hit)));
            }
        }
        var observations = RegistrationWorld.Observe(record, _world.Slid(2, 1, 0), seed: 6, noiseMm: 0.01, stubble: 0);
        var result = DotRegistration.Register(record, observations, _world.Skin, _world.Nominal, RegistrationWorld.InView);
        Assert.False(result.Accepted);
        Assert.Contains("ambiguous", result.RefusalReason, StringComparison.Ordinal);
    }
}

public sealed class FoundDotSpacingTests(DesignFixture fixture) : IClassFixture<DesignFixture>
{
    [Fact]
    public void A_new_dot_too_close_to_a_found_dot_is_left_out_naming_it()
    {
        var t = fixture.Plans.HeadFromScalp;
        var planned = fixture.Dots.Dots.Where(d => d.Session == 2).Take(200).ToList();
        var victim = planned[17];
        var minimum = victim.Region.MinSpacingMm;
        // A found dot 0.5 × the minimum spacing from one planned dot, along the skin.
        var along = Vec3.Cross(victim.Normal, new Vec3(1, 0, 0)).Normalized();
        var close = new FoundDot("s1-close", t.Apply(victim.PointMm + (along * (0.5 * minimum))));
        var far = new FoundDot("s1-far", t.Apply(victim.PointMm + (victim.Normal * 20))); // off the skin: near nothing
        var decisions = FoundDotSpacing.Check(planned, t, [close, far]);
        Assert.Equal(planned.Count, decisions.Count);
        // The found dot may be too close to a neighbour of the victim as well; every dot left out names it.
        Assert.All(decisions.Where(d => !d.Keep), d => Assert.Equal("s1-close", d.NearestFoundId));
        var left = Assert.Single(decisions, d => d.Dot == victim);
        Assert.False(left.Keep);
        Assert.Equal("s1-close", left.NearestFoundId);
        Assert.Equal(0.5 * minimum, left.NearestFoundMm, 6);
        Assert.Equal(0.9 * minimum, left.RequiredMm, 9);
        Assert.Contains("s1-close", left.Reason, StringComparison.Ordinal);
        Assert.StartsWith("left out", left.Reason, StringComparison.Ordinal);

        // Half the minimum is kept only with a factor under one half.
        Assert.All(FoundDotSpacing.Check(planned, t, [close], factor: 0.45), d => Assert.True(d.Keep, d.Reason));
    }
}
