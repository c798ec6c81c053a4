using System.Text.Json;
using System.Text.Json.Serialization;
using SmpRobot.Geometry;
using SmpRobot.Vision;
using SmpRobot.Vision.Calibration;

namespace SmpRobot.Controller.Calibration;

/// <summary>A rigid transform as stored: row-major rotation (9 values) and translation (mm).</summary>
public sealed record TransformData(IReadOnlyList<double> Rotation, IReadOnlyList<double> TranslationMm)
{
    public static TransformData Of(RigidTransform t) => new(Rotations.RotationMatrix(t), [t.Translation.X, t.Translation.Y, t.Translation.Z]);

    public RigidTransform ToTransform() => Rotations.FromMatrix([.. Rotation], new Vec3(TranslationMm[0], TranslationMm[1], TranslationMm[2]));
}

/// <summary>The result part of a stored gantry calibration (calibrations.data_json).</summary>
public sealed record GantryCalibrationData(TransformData GantryFromCamera, IReadOnlyList<double> TipInMarkerMm, string TipOffsetSource, double MarkerRotationSpreadDeg, IReadOnlyList<double> TipTouchResidualsMm, string Board)
{
    public Vec3 TipInMarker => new(TipInMarkerMm[0], TipInMarkerMm[1], TipInMarkerMm[2]);
}

/// <summary>The result part of a stored intrinsics calibration.</summary>
public sealed record IntrinsicsData(int WidthPx, int HeightPx, double FxPx, double FyPx, double CxPx, double CyPx, IReadOnlyList<double> Distortion, string Board)
{
    public static IntrinsicsData Of(CameraIntrinsics k, string board)
    {
        ArgumentNullException.ThrowIfNull(k);
        return new(k.WidthPx, k.HeightPx, k.FxPx, k.FyPx, k.CxPx, k.CyPx, [.. k.Distortion], board);
    }

    public CameraIntrinsics ToIntrinsics() => new(WidthPx, HeightPx, FxPx, FyPx, CxPx, CyPx, Distortion);
}

/// <summary>One stop of a stored gantry calibration (calibrations.stats_json).</summary>
public sealed record StopData(int Index, IReadOnlyList<double> GantryMm, IReadOnlyList<double> MarkerInCameraMm, IReadOnlyList<double> ResidualMm, bool Validation, bool Outlier);

/// <summary>Residuals of a stored gantry calibration.</summary>
public sealed record GantryStatsData(ResidualStats Fit, ResidualStats Validation, IReadOnlyList<StopData> Stops, IReadOnlyList<int> Outliers, IReadOnlyList<string> Warnings);

/// <summary>Per-view figures of a stored intrinsics calibration.</summary>
public sealed record IntrinsicsStatsData(double RmsPx, int ViewsUsed, int ViewsRejected, IReadOnlyList<ViewData> Views, IReadOnlyList<string> CoverageHints);

/// <summary>One view of an intrinsics calibration.</summary>
public sealed record ViewData(string Name, int Corners, bool Used, double RmsPx, string? Reason);

/// <summary>JSON settings of the stored calibration documents (camelCase; NaN allowed, for empty statistics).</summary>
public static class CalibrationJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static string Write<T>(T value) => JsonSerializer.Serialize(value, Options);

    public static T Read<T>(string json) => JsonSerializer.Deserialize<T>(json, Options) ?? throw new InvalidDataException("empty calibration document");

    public static double[] Array(Vec3 v) => [v.X, v.Y, v.Z];
}
