using SmpRobot.Geometry;
using SmpRobot.Vision.Calibration;

namespace SmpRobot.Tests.Calibration;

public sealed class RigidFitTests
{
    private const double Deg = Math.PI / 180;

    /// <summary>A camera 160 mm above the gantry's working area looking down, turned 3° and tilted 2°.</summary>
    internal static RigidTransform TrueGantryFromCamera()
    {
        double[] lookingDown = [1, 0, 0, 0, -1, 0, 0, 0, -1];
        var r = Rotations.Multiply(Rotations.MatrixFromVector(new Vec3(2 * Deg, -1 * Deg, 3 * Deg)), lookingDown);
        return Rotations.FromMatrix(r, new Vec3(120, 90, 160));
    }

    /// <summary>5 × 5 grid over 60 × 60 mm at two heights (0 and 12 mm), in gantry order.</summary>
    internal static List<Vec3> GantryGrid()
    {
        var points = new List<Vec3>();
        foreach (var z in new[] { 0.0, 12.0 })
        {
            for (var j = 0; j < 5; j++)
            {
                for (var i = 0; i < 5; i++) points.Add(new Vec3(90 + (15 * i), 60 + (15 * j), z));
            }
        }
        return points;
    }

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5394", Justification = "seeded noise for a deterministic test: not security")]
    internal static Vec3 Gaussian(Random rng, double sigma)
    {
        double N()
        {
            var u1 = 1.0 - rng.NextDouble();
            var u2 = rng.NextDouble();
            return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        }
        return new Vec3(N(), N(), N()) * sigma;
    }

    /// <summary>Largest distance between where two transforms send the given points.</summary>
    internal static double MaxMappingErrorMm(RigidTransform a, RigidTransform b, IEnumerable<Vec3> points) => points.Max(p => a.Apply(p).DistanceTo(b.Apply(p)));

    [Fact]
    public void Kabsch_recovers_a_known_transform_from_noisy_pairs()
    {
        var truth = TrueGantryFromCamera();
        var cameraFromGantry = Rotations.Inverse(truth);
        var rng = new Random(7);
        var gantry = GantryGrid();
        var camera = gantry.Select(g => cameraFromGantry.Apply(g) + Gaussian(rng, 0.02)).ToList();

        var report = RigidFit.Fit(camera, gantry);

        Assert.Empty(report.OutlierIndices);
        Assert.Equal(10, report.Points.Count(p => p.Role == PointRole.Validation));
        Assert.True(Rotations.AngleBetweenDeg(report.Transform, truth) <= 0.05, $"{Rotations.AngleBetweenDeg(report.Transform, truth):0.0000} deg");
        var mappingError = MaxMappingErrorMm(report.Transform, truth, camera);
        Assert.True(mappingError <= 0.05, $"mapping error {mappingError:0.0000} mm over the working volume");
        Assert.True(report.Transform.Translation.DistanceTo(truth.Translation) <= 0.05, $"translation error {report.Transform.Translation.DistanceTo(truth.Translation):0.0000} mm");
        // Noise σ = 0.02 mm per axis: residuals of about √3 · 0.02 ≈ 0.035 mm.
        Assert.InRange(report.Validation.RmsMm, 0.015, 0.06);
        Assert.InRange(report.Fit.RmsMm, 0.015, 0.06);
    }

    [Fact]
    public void Kabsch_never_returns_a_reflection()
    {
        // Mirror-image targets: the best rotation is still a rotation (det +1), not the reflection that fits exactly.
        Vec3[] from = [new(0, 0, 0), new(10, 0, 0), new(0, 10, 0), new(0, 0, 10)];
        Vec3[] to = [.. from.Select(p => new Vec3(p.X, p.Y, -p.Z))];
        var t = RigidFit.Kabsch(from, to);
        var r = Rotations.RotationMatrix(t);
        var det = (r[0] * ((r[4] * r[8]) - (r[5] * r[7]))) - (r[1] * ((r[3] * r[8]) - (r[5] * r[6]))) + (r[2] * ((r[3] * r[7]) - (r[4] * r[6])));
        Assert.Equal(1.0, det, 9);
        Assert.Throws<ArgumentException>(() => RigidFit.Kabsch([new(0, 0, 0), new(1, 0, 0), new(2, 0, 0)], [new(0, 0, 0), new(1, 0, 0), new(2, 0, 0)]));
    }

    [Fact]
    public void Ransac_rejects_the_injected_outliers_and_only_them()
    {
        var truth = TrueGantryFromCamera();
        var cameraFromGantry = Rotations.Inverse(truth);
        var rng = new Random(11);
        var gantry = GantryGrid();
        var camera = gantry.Select(g => cameraFromGantry.Apply(g) + Gaussian(rng, 0.02)).ToList();
        // 3 and 28 are fit points, 17 is held out for validation (every fifth from 2): a mis-detected
        // marker, a skipped step and a bumped head.
        camera[3] += new Vec3(2.0, 0, 0);
        camera[17] += new Vec3(0, -1.0, 0.3);
        camera[28] += new Vec3(0, 0, 5.0);

        var report = RigidFit.Fit(camera, gantry, new RigidFitOptions { InlierThresholdMm = 0.3 });

        Assert.Equal([3, 17, 28], report.OutlierIndices);
        Assert.Equal(PointRole.Validation, report.Points[17].Role);
        var clean = camera.Where((_, i) => i is not (3 or 17 or 28)).ToList();
        Assert.True(MaxMappingErrorMm(report.Transform, truth, clean) <= 0.05);
        Assert.True(report.Validation.MaxMm < 0.3, "the outlier must not be in the validation statistics");
        Assert.Equal(9, report.Validation.Count);
        Assert.Equal(38, report.Fit.Count); // 40 fit points less 3 and 28
    }

    [Fact]
    public void Validation_statistics_on_a_constructed_example()
    {
        // Ten pairs: the fit points map exactly by the identity; the five held-out points are
        // displaced by 0.1 .. 0.5 mm, so their residuals are known exactly.
        var from = new List<Vec3>();
        var to = new List<Vec3>();
        for (var i = 0; i < 10; i++)
        {
            var p = new Vec3(10 * (i % 4), 7 * (i / 4), 3 * (i % 3));
            from.Add(p);
            to.Add(i % 2 == 1 ? p - (new Vec3(0.6, 0.8, 0) * (0.1 * ((i / 2) + 1))) : p);
        }
        var report = RigidFit.Fit(from, to, new RigidFitOptions { ValidationIndices = [1, 3, 5, 7, 9], InlierThresholdMm = 1.0 });

        Assert.True(MaxMappingErrorMm(report.Transform, RigidTransform.Identity, from) < 1e-9);
        Assert.Equal(5, report.Fit.Count);
        Assert.True(report.Fit.MaxMm < 1e-9);
        var v = report.Validation;
        Assert.Equal(5, v.Count);
        Assert.Equal(Math.Sqrt(0.11), v.RmsMm, 9);
        Assert.Equal(0.3, v.MeanMm, 9);
        Assert.Equal(0.48, v.P95Mm, 9); // (n−1)·0.95 = 3.8: 0.4 + 0.8 × 0.1
        Assert.Equal(0.5, v.MaxMm, 9);
        Assert.Equal(new Vec3(0.06, 0.08, 0).X, report.Points[1].ResidualMm.X, 9);
        Assert.Equal(0.1 + (0.4 * ResidualStats.R63Fraction), v.R63Mm, 9); // (n−1)·q = 4q between 0.1 and 0.5
    }

    [Fact]
    public void Hold_out_every_k_th_point()
    {
        var held = RigidFit.ValidationSet(12, new RigidFitOptions { ValidationEvery = 4 });
        Assert.Equal([3, 7, 11], Enumerable.Range(0, 12).Where(i => held[i]));
        var spread = RigidFit.ValidationSet(10, new RigidFitOptions { ValidationFraction = 0.2 });
        Assert.Equal([2, 7], Enumerable.Range(0, 10).Where(i => spread[i]));
    }

    [Fact]
    public void Accuracy_radii_of_a_planar_gaussian_are_sigma_root_two_and_twice_that()
    {
        var rng = new Random(5);
        const double sigma = 0.1;
        var radii = Enumerable.Range(0, 20000).Select(_ =>
        {
            var g = Gaussian(rng, sigma);
            return Math.Sqrt((g.X * g.X) + (g.Y * g.Y));
        }).ToList();
        var stats = ResidualStats.Of(radii);
        Assert.InRange(stats.R63Mm, sigma * Math.Sqrt(2) * 0.97, sigma * Math.Sqrt(2) * 1.03);
        Assert.InRange(stats.R98Mm, 2 * sigma * Math.Sqrt(2) * 0.97, 2 * sigma * Math.Sqrt(2) * 1.03);
        Assert.InRange(ResidualStats.R63Fraction, 0.632, 0.633);

        var uniform = ResidualStats.Of(Enumerable.Range(1, 100).Select(i => (double)i));
        Assert.Equal(1 + (99 * ResidualStats.R63Fraction), uniform.R63Mm, 9);
        Assert.Equal(1 + (99 * 0.95), uniform.P95Mm, 9);
        Assert.Equal(0, ResidualStats.Of([]).Count);
    }
}
