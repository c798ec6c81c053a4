using OpenCvSharp;
using SmpRobot.Geometry;
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

    private static CharucoCorners Project(CameraIntrinsics k, MarkerBoard board, RigidTransform pose)
    {
        var ids = Enumerable.Range(0, board.CornerCount).ToArray();
        var px = ids.Select(id => k.Project(pose.Apply(board.CornerInHead(id)))).Select(p => new Point2f((float)p.X, (float)p.Y)).ToArray();
        var inside = ids.Where(i => px[i].X >= 0 && px[i].Y >= 0 && px[i].X <= k.WidthPx - 1 && px[i].Y <= k.HeightPx - 1).ToArray();
        return new CharucoCorners([.. inside.Select(i => px[i])], inside, 0);
    }

    [Fact]
    public void Coverage_names_the_missing_regions_and_tilts_until_the_views_cover_them()
    {
        var truth = CameraIntrinsics.Synthetic(1280, 720);
        using var board = CalibrationBoard();
        using var calibrator = new IntrinsicsCalibrator(board, truth.WidthPx, truth.HeightPx);
        var poses = CalibrationPoses(truth);

        Assert.True(calibrator.AddDetections(Project(truth, board, poses[0]), "frontal").Accepted);
        var first = calibrator.Coverage();
        Assert.False(first.IsComplete);
        Assert.Equal(["left", "right", "top", "bottom"], first.MissingTilts);
        Assert.Contains("top-left", first.MissingCells);
        Assert.Contains("bottom-right", first.MissingCells);
        Assert.DoesNotContain("middle", first.MissingCells);
        Assert.Contains(first.Hints, h => h.Contains("top-left", StringComparison.Ordinal));
        Assert.Throws<InvalidOperationException>(() => calibrator.Solve());

        foreach (var pose in poses.Skip(1)) Assert.True(calibrator.AddDetections(Project(truth, board, pose)).Accepted);
        var full = calibrator.Coverage();
        Assert.True(full.IsComplete, string.Join(" ", full.Hints));
        Assert.Empty(full.Hints);

        // Exact corners: the solve is exact too.
        var result = calibrator.Solve();
        Assert.True(result.RmsPx < 0.01);
        Assert.Equal(truth.FxPx, result.Intrinsics.FxPx, 1e-3 * truth.FxPx);
    }

    [Fact]
    public void A_heavily_blurred_view_and_a_wrong_size_image_are_refused()
    {
        var truth = CameraIntrinsics.Synthetic(1280, 720);
        using var board = CalibrationBoard();
        using var scene = new SyntheticScene(SyntheticScenario.Still, truth, board, seed: 4);
        using var calibrator = new IntrinsicsCalibrator(board, truth.WidthPx, truth.HeightPx);
        using var image = scene.RenderAt(CalibrationPoses(truth)[1], 1);
        Cv2.GaussianBlur(image, image, new Size(0, 0), 9);
        var blurred = calibrator.AddView(image, "blurred");
        output.WriteLine(blurred.Message);
        Assert.False(blurred.Accepted);
        Assert.Contains("corners found", blurred.Message, StringComparison.Ordinal);

        using var small = new Mat(360, 640, MatType.CV_8UC3, Scalar.All(128));
        Assert.False(calibrator.AddView(small, "small").Accepted);
        Assert.Equal(0, calibrator.ViewCount);
    }
}
