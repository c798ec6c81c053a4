using System.Globalization;
using SmpRobot.Geometry;

namespace SmpRobot.Vision.Calibration;

/// <summary>One stop of the gantry calibration run.</summary>
/// <param name="GantryMm">Gantry position (machine coordinates of the needle tip, G), mm.</param>
/// <param name="CameraFromMarker">Measured pose T_CM of the needle-head marker in the camera frame C, mm.</param>
public sealed record MarkerObservation(Vec3 GantryMm, RigidTransform CameraFromMarker);

/// <summary>A touch-off: the needle tip jogged onto a point whose camera-frame position is known.</summary>
/// <param name="GantryMm">Gantry position with the tip on the point, mm.</param>
/// <param name="CameraPointMm">The same physical point measured in the camera frame (e.g. a corner of a board lying in view), mm.</param>
public sealed record TipTouch(Vec3 GantryMm, Vec3 CameraPointMm);

/// <summary>Where the marker-to-tip offset of a <see cref="GantryCalibration"/> came from.</summary>
public enum TipOffsetSource
{
    /// <summary>Not known: assumed zero (the marker origin is taken to be the tip). Only right when the marker really sits at the tip.</summary>
    AssumedZero,
    /// <summary>Given by the caller (e.g. from the needle head's drawing).</summary>
    Given,
    /// <summary>Solved from tip touch-offs.</summary>
    TipTouch,
}

/// <summary>Settings of <see cref="GantryCalibrator.Solve"/>.</summary>
public sealed record GantryCalibrationOptions
{
    /// <summary>Fit, RANSAC and hold-out settings of the marker-origin fit.</summary>
    public RigidFitOptions Fit { get; init; } = new();

    /// <summary>The needle tip in the marker frame M when known beforehand, mm; takes precedence over touch-offs. Default null.</summary>
    public Vec3? TipOffsetInMarkerMm { get; init; }

    /// <summary>A warning is raised when a marker's rotation differs from the mean by more than this (deg); the gantry only translates, so it should not. Default 1.</summary>
    public double MaxMarkerRotationSpreadDeg { get; init; } = 1.0;
}

/// <summary>A solved camera-to-gantry calibration.</summary>
/// <param name="GantryFromCamera">T_GC: maps a camera-frame point to the gantry coordinates that put the needle tip on it.</param>
/// <param name="TipOffsetInMarkerMm">Needle tip in the marker frame M, mm (zero when <paramref name="TipOffsetSource"/> is AssumedZero).</param>
/// <param name="TipOffsetSource">Where the offset came from.</param>
/// <param name="MarkerFit">The fit of marker origins (camera) to gantry positions: residuals, outliers, validation. Its transform is T_GC for the marker origin, T'.</param>
/// <param name="CameraFromMarkerRotation">Mean marker orientation R_CM over the inlier stops (translation zero).</param>
/// <param name="MarkerRotationSpreadDeg">Largest angle between one inlier stop's marker orientation and the mean, degrees.</param>
/// <param name="TipTouchResidualsMm">Per touch-off: |T_GC · camera point − gantry|, mm (empty without touches).</param>
/// <param name="Warnings">Things the engineer should know (offset assumed, marker rotating, outliers).</param>
public sealed record GantryCalibration(
    RigidTransform GantryFromCamera,
    Vec3 TipOffsetInMarkerMm,
    TipOffsetSource TipOffsetSource,
    RigidFitReport MarkerFit,
    RigidTransform CameraFromMarkerRotation,
    double MarkerRotationSpreadDeg,
    IReadOnlyList<double> TipTouchResidualsMm,
    IReadOnlyList<string> Warnings)
{
    /// <summary>The needle tip in the camera frame for a measured marker pose: T_CM · offset_M, mm.</summary>
    public Vec3 TipInCamera(RigidTransform cameraFromMarker) => cameraFromMarker.Apply(TipOffsetInMarkerMm);
}

/// <summary>
/// Camera-to-gantry calibration from a marker carried on the needle head.
/// <para>
/// Model. At stop i the gantry is at g_i (needle-tip machine coordinates) and the camera measures
/// the marker pose T_CM,i = (R_CM,i, m_i). With the tip at o_M in the marker frame,
/// g_i = R_GC (m_i + R_CM,i o_M) + t_GC.
/// </para>
/// <para>
/// What is observable. A three-axis gantry only translates the head, so R_CM,i is the same at every
/// stop (R_CM) and the equation becomes g_i = R_GC m_i + t′ with t′ = t_GC + R_GC R_CM o_M. The
/// stops determine R_GC and t′ (a rigid fit of marker origins to gantry positions: Kabsch plus
/// RANSAC), but not t_GC and o_M apart: any offset is absorbed into the translation. Measuring the
/// marker's rotation does not help, since it never changes. The split needs one more fact:
/// either the offset o_M is known (the head's drawing), or one or more tip touch-offs
/// (the tip jogged onto a point the camera measures, x_k: g_k = R_GC x_k + t_GC), which give
/// t_GC = mean(g_k − R_GC x_k) and then o_M = R_CMᵀ R_GCᵀ (t′ − t_GC). Without either, o_M is
/// taken as zero and the result maps the marker origin, not the tip (a warning says so).
/// </para>
/// <para>
/// Residual statistics come from the marker-origin fit and do not depend on the offset, because the
/// tip and the marker origin differ by a constant at every stop.
/// </para>
/// </summary>
public static class GantryCalibrator
{
    /// <summary>
    /// Solves T_GC and the marker-to-tip offset (see the class remarks). Needs at least 3 usable
    /// stops not on one line (in practice ≥ 12 at two or more heights); throws ArgumentException otherwise.
    /// </summary>
    public static GantryCalibration Solve(IReadOnlyList<MarkerObservation> observations, IReadOnlyList<TipTouch>? touches = null, GantryCalibrationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(observations);
        options ??= new GantryCalibrationOptions();
        touches ??= [];
        var fit = RigidFit.Fit([.. observations.Select(o => o.CameraFromMarker.Translation)], [.. observations.Select(o => o.GantryMm)], options.Fit);
        var warnings = new List<string>();
        var outliers = fit.OutlierIndices;
        if (outliers.Count > 0)
        {
            warnings.Add(string.Create(CultureInfo.InvariantCulture, $"{outliers.Count} stop(s) rejected as outliers (beyond {options.Fit.InlierThresholdMm} mm): {string.Join(", ", outliers)}"));
        }

        var inlierRotations = fit.Points.Where(p => !p.IsOutlier).Select(p => observations[p.Index].CameraFromMarker).ToList();
        var meanRotation = MeanRotation(inlierRotations);
        var spreadDeg = inlierRotations.Count == 0 ? 0 : inlierRotations.Max(r => Rotations.AngleBetweenDeg(r, meanRotation));
        if (spreadDeg > options.MaxMarkerRotationSpreadDeg)
        {
            warnings.Add(string.Create(CultureInfo.InvariantCulture, $"the marker's orientation varies by up to {spreadDeg:0.00}° between stops (the head only translates): loose marker or poor marker poses"));
        }

        var r = Rotations.FromMatrix(Rotations.RotationMatrix(fit.Transform), Vec3.Zero);
        var rInverse = Rotations.Inverse(r);
        var meanInverse = Rotations.Inverse(meanRotation);
        var tPrime = fit.Transform.Translation;
        Vec3 tGc;
        Vec3 offsetM;
        TipOffsetSource source;
        var touchResiduals = new List<double>();
        if (options.TipOffsetInMarkerMm is { } given)
        {
            source = TipOffsetSource.Given;
            offsetM = given;
            tGc = tPrime - r.Apply(meanRotation.Apply(given));
        }
        else if (touches.Count > 0)
        {
            source = TipOffsetSource.TipTouch;
            var sum = Vec3.Zero;
            foreach (var touch in touches) sum += touch.GantryMm - r.Apply(touch.CameraPointMm);
            tGc = sum * (1.0 / touches.Count);
            offsetM = meanInverse.Apply(rInverse.Apply(tPrime - tGc));
        }
        else
        {
            source = TipOffsetSource.AssumedZero;
            offsetM = Vec3.Zero;
            tGc = tPrime;
            warnings.Add("no tip offset given and no touch-off: the marker origin is taken as the needle tip; any real offset shifts every dot by that much");
        }
        var gantryFromCamera = Rotations.FromMatrix(Rotations.RotationMatrix(fit.Transform), tGc);
        foreach (var touch in touches) touchResiduals.Add(gantryFromCamera.Apply(touch.CameraPointMm).DistanceTo(touch.GantryMm));
        return new GantryCalibration(gantryFromCamera, offsetM, source, fit, meanRotation, spreadDeg, touchResiduals, warnings);
    }

    /// <summary>Chordal L2 mean of rotations (the rotation closest to their sum), found with Kabsch on the rotated unit axes.</summary>
    public static RigidTransform MeanRotation(IReadOnlyList<RigidTransform> poses)
    {
        ArgumentNullException.ThrowIfNull(poses);
        if (poses.Count == 0) return RigidTransform.Identity;
        Vec3[] axes = [new(1, 0, 0), new(0, 1, 0), new(0, 0, 1), new(-1, 0, 0), new(0, -1, 0), new(0, 0, -1)];
        var from = new List<Vec3>();
        var to = new List<Vec3>();
        foreach (var pose in poses)
        {
            var rotation = Rotations.FromMatrix(Rotations.RotationMatrix(pose), Vec3.Zero);
            foreach (var a in axes)
            {
                from.Add(a);
                to.Add(rotation.Apply(a));
            }
        }
        var mean = RigidFit.Kabsch(from, to);
        return Rotations.FromMatrix(Rotations.RotationMatrix(mean), Vec3.Zero);
    }
}
