using System.Globalization;
using OpenCvSharp;
using SmpRobot.Geometry;

namespace SmpRobot.Vision.Calibration;

/// <summary>
/// Summary of residual distances, mm. Percentiles interpolate linearly between the sorted values
/// (p = (n−1)·q). The accuracy radii follow OpenPnP's convention: <see cref="R63Mm"/> holds
/// 1 − e⁻¹ ≈ 63.2 % of the residuals and <see cref="R98Mm"/> holds 1 − e⁻⁴ ≈ 98.2 %; for
/// isotropic Gaussian errors in a plane (σ per axis) these are exactly σ√2 and 2σ√2.
/// </summary>
/// <param name="Count">Residuals summarised (0: every other figure is NaN).</param>
/// <param name="RmsMm">Root mean square.</param>
/// <param name="MeanMm">Mean.</param>
/// <param name="P95Mm">95th percentile.</param>
/// <param name="MaxMm">Largest.</param>
/// <param name="R63Mm">Radius holding ~63 % of the residuals.</param>
/// <param name="R98Mm">Radius holding ~98 % of the residuals.</param>
public sealed record ResidualStats(int Count, double RmsMm, double MeanMm, double P95Mm, double MaxMm, double R63Mm, double R98Mm)
{
    /// <summary>Fraction of residuals inside <see cref="R63Mm"/>: 1 − e⁻¹.</summary>
    public static readonly double R63Fraction = 1 - Math.Exp(-1);

    /// <summary>Fraction of residuals inside <see cref="R98Mm"/>: 1 − e⁻⁴.</summary>
    public static readonly double R98Fraction = 1 - Math.Exp(-4);

    /// <summary>Summarises residual distances (non-negative, finite), mm.</summary>
    public static ResidualStats Of(IEnumerable<double> distancesMm)
    {
        ArgumentNullException.ThrowIfNull(distancesMm);
        var sorted = distancesMm.Order().ToArray();
        if (sorted.Length == 0) return new ResidualStats(0, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN);
        return new ResidualStats(
            sorted.Length,
            Math.Sqrt(sorted.Sum(d => d * d) / sorted.Length),
            sorted.Average(),
            Quantile(sorted, 0.95),
            sorted[^1],
            Quantile(sorted, R63Fraction),
            Quantile(sorted, R98Fraction));
    }

    /// <summary>The <paramref name="q"/>-quantile (0..1) of ascending <paramref name="sorted"/>, linear interpolation between neighbours.</summary>
    public static double Quantile(IReadOnlyList<double> sorted, double q)
    {
        ArgumentNullException.ThrowIfNull(sorted);
        if (sorted.Count == 0) return double.NaN;
        var h = (sorted.Count - 1) * Math.Clamp(q, 0, 1);
        var lo = (int)Math.Floor(h);
        var hi = Math.Min(lo + 1, sorted.Count - 1);
        return sorted[lo] + ((h - lo) * (sorted[hi] - sorted[lo]));
    }

    /// <summary>"RMS 0.031 / p95 0.058 / max 0.071 mm; r63 0.030, r98 0.069 mm (n = 5)".</summary>
    public override string ToString() => Count == 0
        ? "no points"
        : string.Create(CultureInfo.InvariantCulture, $"RMS {RmsMm:0.000} / p95 {P95Mm:0.000} / max {MaxMm:0.000} mm; r63 {R63Mm:0.000}, r98 {R98Mm:0.000} mm (n = {Count})");
}

/// <summary>Whether a point pair was used to fit the transform or kept out to check it.</summary>
public enum PointRole
{
    /// <summary>Used in the fit (unless it is an outlier).</summary>
    Fit,
    /// <summary>Held out: only checks the fit.</summary>
    Validation,
}

/// <summary>One point pair after a fit.</summary>
/// <param name="Index">Index in the input.</param>
/// <param name="FromMm">Source point (e.g. camera frame), mm.</param>
/// <param name="ToMm">Target point (e.g. gantry frame), mm.</param>
/// <param name="ResidualMm">T · from − to, in the target frame, mm.</param>
/// <param name="Role">Fit or validation.</param>
/// <param name="IsOutlier">Farther than the inlier threshold from the fit; not in any statistic.</param>
public sealed record PointResidual(int Index, Vec3 FromMm, Vec3 ToMm, Vec3 ResidualMm, PointRole Role, bool IsOutlier)
{
    /// <summary>Length of the residual, mm.</summary>
    public double ErrorMm => ResidualMm.Length;
}

/// <summary>Settings of <see cref="RigidFit.Fit"/>.</summary>
public sealed record RigidFitOptions
{
    /// <summary>A pair whose residual exceeds this is an outlier (mm). Default 0.5 (a few times gantry backlash plus marker noise).</summary>
    public double InlierThresholdMm { get; init; } = 0.5;

    /// <summary>Use RANSAC (minimal 3-point samples) to find the outliers before the final fit. Default true.</summary>
    public bool UseRansac { get; init; } = true;

    /// <summary>RANSAC samples drawn at most (it stops early once every fit point agrees). Default 500.</summary>
    public int RansacIterations { get; init; } = 500;

    /// <summary>Seed of RANSAC's sampling, so a fit is repeatable. Default 1.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Fraction of the pairs held out for validation, spread evenly over the input order. Default 0.2.</summary>
    public double ValidationFraction { get; init; } = 0.2;

    /// <summary>When &gt; 0, hold out every k-th pair instead (indices k−1, 2k−1, …). Default 0.</summary>
    public int ValidationEvery { get; init; }

    /// <summary>When given, exactly these pairs are held out (overrides the two settings above).</summary>
    public IReadOnlyList<int>? ValidationIndices { get; init; }
}

/// <summary>The result of <see cref="RigidFit.Fit"/>.</summary>
/// <param name="Transform">T mapping source points onto target points (T_GC for camera → gantry).</param>
/// <param name="Points">Every pair with its residual, role and outlier flag, in input order.</param>
/// <param name="Fit">Statistics of the fit inliers' residuals.</param>
/// <param name="Validation">Statistics of the held-out, non-outlier pairs' residuals: the honest accuracy estimate.</param>
/// <param name="RansacIterations">Samples RANSAC drew (0 without RANSAC).</param>
public sealed record RigidFitReport(RigidTransform Transform, IReadOnlyList<PointResidual> Points, ResidualStats Fit, ResidualStats Validation, int RansacIterations)
{
    /// <summary>Indices of the outliers (fit and validation), ascending.</summary>
    public IReadOnlyList<int> OutlierIndices => [.. Points.Where(p => p.IsOutlier).Select(p => p.Index)];
}

/// <summary>
/// Rigid (rotation + translation, no scale) point-set registration: Kabsch/Umeyama least squares,
/// RANSAC for outliers, hold-out validation.
/// </summary>
public static class RigidFit
{
    /// <summary>
    /// How far two gantry-from-camera mappings disagree over a gantry-frame box: the largest
    /// |found · p − truth · p| over the camera points p that <paramref name="truth"/> maps to the
    /// box's eight corners, mm. The measure of a calibration against a known mounting.
    /// </summary>
    public static double MaxMappingDifferenceMm(RigidTransform found, RigidTransform truth, Vec3 boxMinMm, Vec3 boxMaxMm)
    {
        var cameraFromGantry = Rotations.Inverse(truth);
        var max = 0.0;
        foreach (var x in new[] { boxMinMm.X, boxMaxMm.X })
        {
            foreach (var y in new[] { boxMinMm.Y, boxMaxMm.Y })
            {
                foreach (var z in new[] { boxMinMm.Z, boxMaxMm.Z })
                {
                    var p = cameraFromGantry.Apply(new Vec3(x, y, z));
                    max = Math.Max(max, found.Apply(p).DistanceTo(truth.Apply(p)));
                }
            }
        }
        return max;
    }

    /// <summary>
    /// Least-squares rigid transform T with T · from[i] ≈ to[i]: centroids, cross-covariance
    /// H = Σ (from − f̄)(to − t̄)ᵀ, SVD H = U S Vᵀ, R = V diag(1, 1, sign det(V Uᵀ)) Uᵀ (the sign
    /// keeps R a rotation, never a reflection), t = t̄ − R f̄. Needs at least three pairs not on one
    /// line; throws ArgumentException otherwise.
    /// </summary>
    public static RigidTransform Kabsch(IReadOnlyList<Vec3> from, IReadOnlyList<Vec3> to)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        if (from.Count != to.Count) throw new ArgumentException("point lists differ in length");
        if (from.Count < 3) throw new ArgumentException("a rigid fit needs at least 3 point pairs");
        var fc = Centroid(from);
        var tc = Centroid(to);
        var h = new double[3, 3];
        for (var i = 0; i < from.Count; i++)
        {
            var a = from[i] - fc;
            var b = to[i] - tc;
            double[] av = [a.X, a.Y, a.Z];
            double[] bv = [b.X, b.Y, b.Z];
            for (var r = 0; r < 3; r++)
            {
                for (var c = 0; c < 3; c++) h[r, c] += av[r] * bv[c];
            }
        }
        using var hm = Mat.FromArray(h);
        using var w = new Mat();
        using var u = new Mat();
        using var vt = new Mat();
        Cv2.SVDecomp(hm, w, u, vt);
        var s0 = w.At<double>(0);
        var s1 = w.At<double>(1);
        if (!(s0 > 0) || s1 <= s0 * 1e-10) throw new ArgumentException("the points lie on one line (or on one point): rotation is undetermined");
        var U = new double[9];
        var V = new double[9];
        for (var r = 0; r < 3; r++)
        {
            for (var c = 0; c < 3; c++)
            {
                U[(r * 3) + c] = u.At<double>(r, c);
                V[(r * 3) + c] = vt.At<double>(c, r);
            }
        }
        var ut = Rotations.Transpose(U);
        var d = Det(Rotations.Multiply(V, ut)) < 0 ? -1.0 : 1.0;
        double[] fix = [1, 0, 0, 0, 1, 0, 0, 0, d];
        var rot = Rotations.Multiply(Rotations.Multiply(V, fix), ut);
        var rotated = Rotations.FromMatrix(rot, Vec3.Zero).Apply(fc);
        return Rotations.FromMatrix(rot, tc - rotated);
    }

    /// <summary>
    /// RANSAC over minimal 3-point samples (non-degenerate ones only) with a fixed seed; the
    /// consensus set with the most inliers (ties: smaller squared error) is refitted with Kabsch and
    /// its inliers recomputed until they stop changing. Returns the transform and the inlier flags.
    /// Throws ArgumentException when fewer than 3 pairs agree.
    /// </summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5394", Justification = "seeded sampling, so that a calibration's fit is reproducible: not security")]
    public static (RigidTransform Transform, bool[] Inliers, int Iterations) Ransac(IReadOnlyList<Vec3> from, IReadOnlyList<Vec3> to, double inlierThresholdMm, int iterations = 500, int seed = 1)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        if (from.Count != to.Count) throw new ArgumentException("point lists differ in length");
        var n = from.Count;
        if (n < 3) throw new ArgumentException("RANSAC needs at least 3 point pairs");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inlierThresholdMm);
        var rng = new Random(seed);
        var best = new bool[n];
        var bestCount = -1;
        var bestCost = double.PositiveInfinity;
        var drawn = 0;
        for (var it = 0; it < Math.Max(1, iterations) && bestCount < n; it++)
        {
            drawn++;
            int a = rng.Next(n), b = rng.Next(n), c = rng.Next(n);
            if (a == b || b == c || a == c || Degenerate(from[a], from[b], from[c]) || Degenerate(to[a], to[b], to[c])) continue;
            RigidTransform t;
            try
            {
                t = Kabsch([from[a], from[b], from[c]], [to[a], to[b], to[c]]);
            }
            catch (ArgumentException)
            {
                continue;
            }
            var inliers = new bool[n];
            var count = 0;
            var cost = 0.0;
            for (var i = 0; i < n; i++)
            {
                var e = t.Apply(from[i]).DistanceTo(to[i]);
                inliers[i] = e <= inlierThresholdMm;
                if (inliers[i]) count++;
                cost += Math.Min(e, inlierThresholdMm) * Math.Min(e, inlierThresholdMm);
            }
            if (count > bestCount || (count == bestCount && cost < bestCost))
            {
                (best, bestCount, bestCost) = (inliers, count, cost);
            }
        }
        if (bestCount < 3) throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"no 3 point pairs agree within {inlierThresholdMm} mm"));
        var transform = RigidTransform.Identity;
        for (var round = 0; round < 5; round++)
        {
            var idx = Enumerable.Range(0, n).Where(i => best[i]).ToArray();
            transform = Kabsch([.. idx.Select(i => from[i])], [.. idx.Select(i => to[i])]);
            var next = Enumerable.Range(0, n).Select(i => transform.Apply(from[i]).DistanceTo(to[i]) <= inlierThresholdMm).ToArray();
            if (next.Count(x => x) < 3 || next.SequenceEqual(best)) break;
            best = next;
        }
        return (transform, best, drawn);
    }

    /// <summary>
    /// Fits T (to ← from) on the non-held-out pairs (with RANSAC unless disabled), then reports every
    /// pair's residual T·from − to, the fit inliers' statistics and the held-out pairs' statistics.
    /// Held-out pairs beyond the inlier threshold are flagged as outliers and left out of the
    /// validation statistics (they are counted in <see cref="RigidFitReport.OutlierIndices"/>).
    /// Throws ArgumentException when fewer than 3 pairs remain to fit.
    /// </summary>
    public static RigidFitReport Fit(IReadOnlyList<Vec3> from, IReadOnlyList<Vec3> to, RigidFitOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        options ??= new RigidFitOptions();
        if (from.Count != to.Count) throw new ArgumentException("point lists differ in length");
        if (from.Any(p => !p.IsFinite) || to.Any(p => !p.IsFinite)) throw new ArgumentException("points must be finite");
        var n = from.Count;
        var validation = ValidationSet(n, options);
        var fitIdx = Enumerable.Range(0, n).Where(i => !validation[i]).ToArray();
        if (fitIdx.Length < 3) throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"{fitIdx.Length} pairs left to fit after holding out {n - fitIdx.Length}; need at least 3"));
        var fitFrom = fitIdx.Select(i => from[i]).ToArray();
        var fitTo = fitIdx.Select(i => to[i]).ToArray();

        RigidTransform transform;
        bool[] fitInliers;
        var iterations = 0;
        if (options.UseRansac)
        {
            (transform, fitInliers, iterations) = Ransac(fitFrom, fitTo, options.InlierThresholdMm, options.RansacIterations, options.Seed);
        }
        else
        {
            transform = Kabsch(fitFrom, fitTo);
            fitInliers = [.. fitIdx.Select(_ => true)];
        }

        var points = new PointResidual[n];
        var fitPos = 0;
        for (var i = 0; i < n; i++)
        {
            var residual = transform.Apply(from[i]) - to[i];
            var outlier = validation[i] ? residual.Length > options.InlierThresholdMm : !fitInliers[fitPos++];
            points[i] = new PointResidual(i, from[i], to[i], residual, validation[i] ? PointRole.Validation : PointRole.Fit, outlier);
        }
        return new RigidFitReport(
            transform,
            points,
            ResidualStats.Of(points.Where(p => p.Role == PointRole.Fit && !p.IsOutlier).Select(p => p.ErrorMm)),
            ResidualStats.Of(points.Where(p => p.Role == PointRole.Validation && !p.IsOutlier).Select(p => p.ErrorMm)),
            iterations);
    }

    /// <summary>Which of <paramref name="count"/> pairs are held out under <paramref name="options"/>.</summary>
    public static bool[] ValidationSet(int count, RigidFitOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var held = new bool[count];
        if (options.ValidationIndices is { } explicitIndices)
        {
            foreach (var i in explicitIndices)
            {
                if (i < 0 || i >= count) throw new ArgumentOutOfRangeException(nameof(options), $"validation index {i} outside 0..{count - 1}");
                held[i] = true;
            }
        }
        else if (options.ValidationEvery > 0)
        {
            for (var i = options.ValidationEvery - 1; i < count; i += options.ValidationEvery) held[i] = true;
        }
        else if (options.ValidationFraction > 0)
        {
            var k = (int)Math.Round(count * Math.Min(options.ValidationFraction, 1));
            // Evenly spread over the input order, which follows the gantry's path over the volume.
            for (var j = 0; j < k; j++) held[(int)Math.Floor((j + 0.5) * count / k)] = true;
        }
        return held;
    }

    private static Vec3 Centroid(IReadOnlyList<Vec3> points)
    {
        var s = Vec3.Zero;
        foreach (var p in points) s += p;
        return s * (1.0 / points.Count);
    }

    /// <summary>A sample is degenerate when its triangle is nearly a line (height under 1 % of its longest side).</summary>
    private static bool Degenerate(Vec3 a, Vec3 b, Vec3 c)
    {
        var ab = b - a;
        var ac = c - a;
        var cross = new Vec3((ab.Y * ac.Z) - (ab.Z * ac.Y), (ab.Z * ac.X) - (ab.X * ac.Z), (ab.X * ac.Y) - (ab.Y * ac.X));
        var longest = Math.Max(ab.Length, Math.Max(ac.Length, (c - b).Length));
        return longest < 1e-9 || cross.Length / longest < 0.01 * longest;
    }

    private static double Det(double[] m) =>
        (m[0] * ((m[4] * m[8]) - (m[5] * m[7]))) - (m[1] * ((m[3] * m[8]) - (m[5] * m[6]))) + (m[2] * ((m[3] * m[7]) - (m[4] * m[6])));
}
