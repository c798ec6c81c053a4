using OpenCvSharp;
using SmpRobot.Geometry;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Calibration;

internal static class CalibrationTestSupport
{
    private const double Deg = Math.PI / 180;

    /// <summary>A calibration board that fits the synthetic scene's patch: 9 × 7 squares of 6 mm, 48 corners.</summary>
    public static MarkerBoard CalibrationBoard() => new(new MarkerBoardSpec
    {
        Name = "calib-charuco-9x7", Type = "charuco", Dictionary = "DICT_4X4_50", SquaresX = 9, SquaresY = 7, SquareMm = 6.0, MarkerMm = 4.5,
    });

    /// <summary>
    /// T_CH for a board facing the camera, turned by <paramref name="aboutXDeg"/> / <paramref name="aboutYDeg"/>
    /// (camera axes), its centre seen at pixel (u, v) at depth <paramref name="depthMm"/> (ignoring distortion).
    /// </summary>
    public static RigidTransform ViewPose(CameraIntrinsics k, double u, double v, double depthMm, double aboutXDeg, double aboutYDeg)
    {
        double[] facing = [1, 0, 0, 0, -1, 0, 0, 0, -1];
        var tilt = Rotations.Multiply(Rotations.MatrixFromVector(new Vec3(aboutXDeg * Deg, 0, 0)), Rotations.MatrixFromVector(new Vec3(0, aboutYDeg * Deg, 0)));
        var t = new Vec3((u - k.CxPx) / k.FxPx * depthMm, (v - k.CyPx) / k.FyPx * depthMm, depthMm);
        return Rotations.FromMatrix(Rotations.Multiply(tilt, facing), t);
    }

    /// <summary>Fourteen views: a 3×3 grid of positions over the image, tilted up to ±30° each way, at two depths.</summary>
    public static IReadOnlyList<RigidTransform> CalibrationPoses(CameraIntrinsics k)
    {
        double w = k.WidthPx, h = k.HeightPx;
        (double U, double V, double Z, double Ax, double Ay)[] views =
        [
            (0.50, 0.50, 150, 0, 0),
            (0.28, 0.30, 150, 25, -20),
            (0.50, 0.30, 150, 30, 0),
            (0.72, 0.30, 150, 25, 20),
            (0.28, 0.50, 150, 0, -30),
            (0.72, 0.50, 150, 0, 30),
            (0.28, 0.70, 150, -25, -20),
            (0.50, 0.70, 150, -30, 0),
            (0.72, 0.70, 150, -25, 20),
            (0.30, 0.35, 130, -15, 20),
            (0.70, 0.65, 130, 15, -20),
            (0.70, 0.35, 130, -20, -15),
            (0.30, 0.65, 130, 20, 15),
            (0.50, 0.50, 120, 10, 10),
        ];
        return [.. views.Select(x => ViewPose(k, x.U * w, x.V * h, x.Z, x.Ax, x.Ay))];
    }

    /// <summary>A torn frame: the top half from <paramref name="a"/>, the bottom half from <paramref name="b"/> (a frame swapped in mid-readout).</summary>
    public static Mat TornFrame(SyntheticScene scene, RigidTransform a, RigidTransform b, long frameIndex)
    {
        var top = scene.RenderAt(a, frameIndex);
        using var bottom = scene.RenderAt(b, frameIndex + 1000);
        var half = top.Rows / 2;
        using var src = new Mat(bottom, new Rect(0, half, bottom.Cols, bottom.Rows - half));
        using var dst = new Mat(top, new Rect(0, half, top.Cols, top.Rows - half));
        src.CopyTo(dst);
        return top;
    }
}
