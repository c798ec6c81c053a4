using SmpRobot.Geometry;
using SmpRobot.Vision.Calibration;
using static SmpRobot.Tests.Calibration.RigidFitTests;

namespace SmpRobot.Tests.Calibration;

public sealed class GantryCalibratorTests
{
    private const double Deg = Math.PI / 180;

    /// <summary>The needle tip in the marker frame: the marker sits 25 mm to the side of and 40 mm above the tip.</summary>
    private static readonly Vec3 TrueTipInMarker = new(3.0, -25.0, -40.0);

    /// <summary>The marker's fixed orientation on the head, in the gantry frame.</summary>
    private static readonly double[] GantryFromMarkerRotation = Rotations.MatrixFromVector(new Vec3(0.1, -0.2, 0.4));

    /// <summary>Marker pose the camera sees with the tip at <paramref name="tipG"/>, with noise on translation (mm) and rotation (deg).</summary>
    private static MarkerObservation Observe(RigidTransform cameraFromGantry, Vec3 tipG, Random rng, double noiseMm = 0.02, double noiseDeg = 0.05)
    {
        var markerRotation = Rotations.FromMatrix(GantryFromMarkerRotation, Vec3.Zero);
        var gantryFromMarker = Rotations.FromMatrix(GantryFromMarkerRotation, tipG - markerRotation.Apply(TrueTipInMarker));
        var cameraFromMarker = cameraFromGantry * gantryFromMarker;
        var wobble = Rotations.MatrixFromVector(Gaussian(rng, noiseDeg * Deg));
        var noisy = Rotations.FromMatrix(Rotations.Multiply(wobble, Rotations.RotationMatrix(cameraFromMarker)), cameraFromMarker.Translation + Gaussian(rng, noiseMm));
        return new MarkerObservation(tipG, noisy);
    }

    private static List<MarkerObservation> Run(RigidTransform cameraFromGantry, IEnumerable<Vec3> stops, int seed)
    {
        var rng = new Random(seed);
        return [.. stops.Select(g => Observe(cameraFromGantry, g, rng))];
    }

    [Fact]
    public void Touch_off_separates_the_tip_offset_and_the_mapping_matches_the_truth()
    {
        var truth = TrueGantryFromCamera();
        var cameraFromGantry = Rotations.Inverse(truth);
        var observations = Run(cameraFromGantry, GantryGrid(), 3);
        var rng = new Random(4);
        // Two touch-offs on board corners the camera measures (to ±0.02 mm).
        TipTouch[] touches = [new(new Vec3(110, 75, -2), cameraFromGantry.Apply(new Vec3(110, 75, -2)) + Gaussian(rng, 0.02)),
                              new(new Vec3(135, 100, -2), cameraFromGantry.Apply(new Vec3(135, 100, -2)) + Gaussian(rng, 0.02))];

        var result = GantryCalibrator.Solve(observations, touches);

        Assert.Equal(TipOffsetSource.TipTouch, result.TipOffsetSource);
        Assert.Empty(result.Warnings);
        Assert.True(Rotations.AngleBetweenDeg(result.GantryFromCamera, truth) <= 0.05);
        var volume = GantryGrid().Select(cameraFromGantry.Apply).ToList();
        var error = MaxMappingErrorMm(result.GantryFromCamera, truth, volume);
        Assert.True(error <= 0.05, $"T_GC error {error:0.0000} mm over the working volume");
        Assert.True(result.TipOffsetInMarkerMm.DistanceTo(TrueTipInMarker) <= 0.1, $"tip offset {result.TipOffsetInMarkerMm}");
        Assert.All(result.TipTouchResidualsMm, r => Assert.True(r < 0.1));
        Assert.True(result.MarkerRotationSpreadDeg < 0.3);
        // Each observation's tip, through T_GC, lands on its gantry position.
        Assert.All(observations, o => Assert.True(result.GantryFromCamera.Apply(result.TipInCamera(o.CameraFromMarker)).DistanceTo(o.GantryMm) < 0.15));
    }

    [Fact]
    public void A_given_offset_gives_the_same_mapping_and_no_offset_maps_the_marker_origin()
    {
        var truth = TrueGantryFromCamera();
        var cameraFromGantry = Rotations.Inverse(truth);
        var observations = Run(cameraFromGantry, GantryGrid(), 5);
        var volume = GantryGrid().Select(cameraFromGantry.Apply).ToList();

        var given = GantryCalibrator.Solve(observations, options: new GantryCalibrationOptions { TipOffsetInMarkerMm = TrueTipInMarker });
        Assert.Equal(TipOffsetSource.Given, given.TipOffsetSource);
        Assert.True(MaxMappingErrorMm(given.GantryFromCamera, truth, volume) <= 0.05);

        // Translation-only motion cannot tell the offset from T_GC's translation: the result is then
        // off by the offset (≈ 47 mm here), and says so.
        var assumed = GantryCalibrator.Solve(observations);
        Assert.Equal(TipOffsetSource.AssumedZero, assumed.TipOffsetSource);
        Assert.Contains(assumed.Warnings, w => w.Contains("tip", StringComparison.Ordinal));
        Assert.InRange(MaxMappingErrorMm(assumed.GantryFromCamera, truth, volume), TrueTipInMarker.Length - 0.1, TrueTipInMarker.Length + 0.1);
        // ... while its residuals are the same: they cannot see the offset either.
        Assert.Equal(given.MarkerFit.Validation.RmsMm, assumed.MarkerFit.Validation.RmsMm, 9);
    }

    [Fact]
    public void Drift_check_fails_for_a_camera_moved_half_a_millimetre_and_passes_for_the_true_one()
    {
        var truth = TrueGantryFromCamera();
        var cameraFromGantry = Rotations.Inverse(truth);
        var calibration = GantryCalibrator.Solve(Run(cameraFromGantry, GantryGrid(), 8), options: new GantryCalibrationOptions { TipOffsetInMarkerMm = TrueTipInMarker });
        var checkStops = DriftCheck.SuggestedPoints(new Vec3(90, 60, 0), new Vec3(150, 120, 12));
        Assert.Equal(DriftCheck.RecommendedPoints, checkStops.Count);

        var same = DriftCheck.Check(calibration, Run(cameraFromGantry, checkStops, 9), toleranceMm: 0.2);
        Assert.True(same.Passed, same.Summary);
        Assert.StartsWith("PASS", same.Summary, StringComparison.Ordinal);

        // The camera slid 0.5 mm along the gantry's X since calibration.
        var moved = Rotations.Inverse(Rotations.FromMatrix(Rotations.RotationMatrix(truth), truth.Translation + new Vec3(0.5, 0, 0)));
        var drifted = DriftCheck.Check(calibration, Run(moved, checkStops, 9), toleranceMm: 0.2);
        Assert.False(drifted.Passed);
        Assert.All(drifted.Points, p => Assert.False(p.Passed));
        Assert.InRange(drifted.MeanResidualMm.X, -0.6, -0.4);
        Assert.StartsWith("FAIL", drifted.Summary, StringComparison.Ordinal);
    }
}
