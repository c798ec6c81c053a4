using System.Globalization;
using SmpRobot.Geometry;

namespace SmpRobot.Vision.Calibration;

/// <summary>One point of a drift check.</summary>
/// <param name="Index">Index in the input.</param>
/// <param name="CameraMm">Measured point in the camera frame (the needle tip), mm.</param>
/// <param name="GantryMm">Gantry position at that moment, mm.</param>
/// <param name="ResidualMm">T_GC · camera − gantry, mm.</param>
/// <param name="Passed">Residual within the tolerance.</param>
public sealed record DriftPoint(int Index, Vec3 CameraMm, Vec3 GantryMm, Vec3 ResidualMm, bool Passed)
{
    /// <summary>Length of the residual, mm.</summary>
    public double ErrorMm => ResidualMm.Length;
}

/// <summary>The result of a drift check.</summary>
/// <param name="Passed">Every point within the tolerance (and at least one point).</param>
/// <param name="ToleranceMm">The tolerance applied to each point, mm.</param>
/// <param name="Points">Per point residuals.</param>
/// <param name="Stats">Residual statistics.</param>
/// <param name="MeanResidualMm">Mean residual vector: a common shift points at a moved camera or a lost home.</param>
/// <param name="Summary">One line for the engineer.</param>
public sealed record DriftCheckResult(bool Passed, double ToleranceMm, IReadOnlyList<DriftPoint> Points, ResidualStats Stats, Vec3 MeanResidualMm, string Summary);

/// <summary>
/// Start-of-day verification: a few gantry stops (5 recommended) measured by the camera and compared
/// with an existing T_GC. Passes when every point's residual is within the tolerance.
/// </summary>
public static class DriftCheck
{
    /// <summary>Points a check should use.</summary>
    public const int RecommendedPoints = 5;

    /// <summary>Checks camera-frame tip positions against gantry positions through <paramref name="gantryFromCamera"/>.</summary>
    public static DriftCheckResult Check(RigidTransform gantryFromCamera, IReadOnlyList<Vec3> cameraPointsMm, IReadOnlyList<Vec3> gantryPointsMm, double toleranceMm)
    {
        ArgumentNullException.ThrowIfNull(cameraPointsMm);
        ArgumentNullException.ThrowIfNull(gantryPointsMm);
        if (cameraPointsMm.Count != gantryPointsMm.Count) throw new ArgumentException("point lists differ in length");
        if (!(toleranceMm > 0)) throw new ArgumentOutOfRangeException(nameof(toleranceMm), "tolerance must be positive");
        var points = new List<DriftPoint>();
        var sum = Vec3.Zero;
        for (var i = 0; i < cameraPointsMm.Count; i++)
        {
            var residual = gantryFromCamera.Apply(cameraPointsMm[i]) - gantryPointsMm[i];
            sum += residual;
            points.Add(new DriftPoint(i, cameraPointsMm[i], gantryPointsMm[i], residual, residual.Length <= toleranceMm));
        }
        var stats = ResidualStats.Of(points.Select(p => p.ErrorMm));
        var mean = points.Count == 0 ? Vec3.Zero : sum * (1.0 / points.Count);
        var failed = points.Count(p => !p.Passed);
        var passed = points.Count > 0 && failed == 0;
        var summary = points.Count == 0
            ? "FAIL: no points measured"
            : passed
                ? string.Create(CultureInfo.InvariantCulture, $"PASS: {points.Count} points, max {stats.MaxMm:0.000} mm <= {toleranceMm:0.###} mm (RMS {stats.RmsMm:0.000} mm)")
                : string.Create(CultureInfo.InvariantCulture, $"FAIL: {failed} of {points.Count} points beyond {toleranceMm:0.###} mm (max {stats.MaxMm:0.000} mm, mean shift {mean} mm): recalibrate the camera to gantry mapping");
        return new DriftCheckResult(passed, toleranceMm, points, stats, mean, summary);
    }

    /// <summary>Checks marker observations against a gantry calibration (tips from its marker-to-tip offset).</summary>
    public static DriftCheckResult Check(GantryCalibration calibration, IReadOnlyList<MarkerObservation> observations, double toleranceMm)
    {
        ArgumentNullException.ThrowIfNull(calibration);
        ArgumentNullException.ThrowIfNull(observations);
        return Check(calibration.GantryFromCamera, [.. observations.Select(o => calibration.TipInCamera(o.CameraFromMarker))], [.. observations.Select(o => o.GantryMm)], toleranceMm);
    }

    /// <summary>Five check positions in a box (gantry mm): its centre and four points inset by <paramref name="insetFraction"/> towards the corners, at the box's mid height.</summary>
    public static IReadOnlyList<Vec3> SuggestedPoints(Vec3 minMm, Vec3 maxMm, double insetFraction = 0.2)
    {
        var c = (minMm + maxMm) * 0.5;
        var dx = (maxMm.X - minMm.X) * (0.5 - insetFraction);
        var dy = (maxMm.Y - minMm.Y) * (0.5 - insetFraction);
        return [c, c + new Vec3(-dx, -dy, 0), c + new Vec3(dx, -dy, 0), c + new Vec3(dx, dy, 0), c + new Vec3(-dx, dy, 0)];
    }
}
