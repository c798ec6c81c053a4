using OpenCvSharp;
using SmpRobot.Vision;
using SmpRobot.Vision.Calibration;
using Xunit.Abstractions;
using static SmpRobot.Tests.Calibration.CalibrationTestSupport;

namespace SmpRobot.Tests.Calibration;

public sealed class IntrinsicsCalibratorTests(ITestOutputHelper output)
{
    [Fact]
    public void Synthetic_views_recover_the_true_intrinsics_and_a_torn_frame_is_rejected()
    {
        var truth = CameraIntrinsics.Synthetic(1280, 720);
        using var board = CalibrationBoard();
        using var scene = new SyntheticScene(SyntheticScenario.Still, truth, board, seed: 3);
        using var calibrator = new IntrinsicsCalibrator(board, truth.WidthPx, truth.HeightPx);
        var poses = CalibrationPoses(truth);
        for (var i = 0; i < poses.Count; i++)
        {
            using var image = scene.RenderAt(poses[i], i);
            var added = calibrator.AddView(image, $"pose {i}");
            output.WriteLine(added.Message);
            Assert.True(added.Accepted, added.Message);
        }
        // The board moved 1.5 mm while the frame was read out: top and bottom halves disagree.
        using (var torn = TornFrame(scene, poses[0], Rotations.FromMatrix(Rotations.RotationMatrix(poses[0]), poses[0].Translation + new Vec3(1.5, 0, 0)), 99))
        {
            var added = calibrator.AddView(torn, "torn");
            output.WriteLine(added.Message);
            Assert.True(added.Accepted, added.Message);
        }

        var result = calibrator.Solve();
        foreach (var v in result.Views) output.WriteLine($"{v.Name}: {v.Corners} corners, {v.RmsPx:0.000} px, lean {v.LeanRightDeg:0} / {v.LeanDownDeg:0}, {v.Status} {v.Reason}");
        var k = result.Intrinsics;
        output.WriteLine($"fx {k.FxPx:0.00} fy {k.FyPx:0.00} cx {k.CxPx:0.00} cy {k.CyPx:0.00} d [{string.Join(", ", k.Distortion.Select(d => d.ToString("0.0000")))}] rms {result.RmsPx:0.000}");
        var rejected = Assert.Single(result.Views, v => v.Status == ViewStatus.RejectedHighError);
        Assert.Equal("torn", rejected.Name);
        Assert.True(result.RmsPx <= 0.3, $"RMS {result.RmsPx:0.000} px");
        Assert.InRange(k.FxPx, truth.FxPx - 3, truth.FxPx + 3);
        Assert.InRange(k.FyPx, truth.FyPx - 3, truth.FyPx + 3);
        Assert.InRange(k.CxPx, truth.CxPx - 3, truth.CxPx + 3);
        Assert.InRange(k.CyPx, truth.CyPx - 3, truth.CyPx + 3);
        Assert.True(result.Coverage.IsComplete, string.Join(" ", result.Coverage.Hints));
    }
}
