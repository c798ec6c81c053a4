using SmpRobot.Geometry;
using SmpRobot.Vision;
using SmpRobot.Vision.Calibration;

namespace SmpRobot.Tests.CalibrationIntegration;

/// <summary>The synthetic gantry-marker camera: the marker stays in view and measurable over the sim profile's calibration volume.</summary>
public sealed class GantryMarkerCameraTests
{
    [Fact]
    public void The_marker_is_measured_to_a_few_hundredths_of_a_millimetre_over_the_calibration_volume()
    {
        var profile = TestProfiles.Sim();
        var nominal = profile.Tracking.GantryFromCamera!.ToTransform();
        var truth = GantryMarkerTruth.Default(nominal);
        var tip = new Vec3(0, 0, 0);
        var board = MarkerBoard.Load(Path.Combine(TestProfiles.RepoRoot, "hardware", "boards", "needle-charuco-6x4.json"));
        var plate = MarkerBoard.Load(Path.Combine(TestProfiles.RepoRoot, "hardware", "boards", "intrinsics-charuco-9x7.json"));
        using var camera = new SimulatedGantryMarkerCamera(() => tip, truth, board, plate, null, TimeProvider.System);
        using var estimator = new BoardPoseEstimator(camera.Board, camera.Intrinsics);
        var min = profile.Tracking.CalibrationVolume!.MinMm;
        var max = profile.Tracking.CalibrationVolume.MaxMm;
        var errors = new List<double>();
        foreach (var z in new[] { min.Z, max.Z })
        {
            foreach (var x in new[] { min.X, (min.X + max.X) / 2, max.X })
            {
                foreach (var y in new[] { min.Y, max.Y })
                {
                    tip = new Vec3(x, y, z);
                    using var frame = camera.Read();
                    var pose = estimator.Estimate(frame.Image, frame.CapturedTimestamp);
                    Assert.True(pose is not null, $"marker not found with the tip at {tip}");
                    Assert.Equal(camera.Board.CornerCount, estimator.LastDetection!.CharucoIds.Length);
                    errors.Add(pose.CameraFromHead.Translation.DistanceTo(frame.TruthCameraFromHead!.Value.Translation));
                }
            }
        }
        Assert.True(errors.Max() < 0.1, $"marker position errors up to {errors.Max():0.000} mm");
        Assert.Equal(new Vec3(12, 0, -10), truth.TipInMarkerMm);
        // The truth differs from the nominal mounting, so a calibration has something to find.
        Assert.InRange(truth.GantryFromCamera.Translation.DistanceTo(nominal.Translation), 1, 2);
        Assert.InRange(Rotations.AngleBetweenDeg(truth.GantryFromCamera, nominal), 0.45, 0.55);
    }
}
