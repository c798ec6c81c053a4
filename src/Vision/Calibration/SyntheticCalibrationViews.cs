using SmpRobot.Geometry;
namespace SmpRobot.Vision.Calibration;

/// <summary>Board poses for an intrinsics calibration of the synthetic camera: the views an engineer would take.</summary>
public static class SyntheticCalibrationViews
{
    private const double Deg = Math.PI / 180;

    /// <summary>
    /// T_CB for a board facing the camera, turned by <paramref name="aboutXDeg"/> / <paramref name="aboutYDeg"/>
    /// (camera axes), its centre seen at pixel (u, v) at depth <paramref name="depthMm"/> (ignoring distortion).
    /// </summary>
    public static RigidTransform ViewPose(CameraIntrinsics k, double u, double v, double depthMm, double aboutXDeg, double aboutYDeg)
    {
        ArgumentNullException.ThrowIfNull(k);
        double[] facing = [1, 0, 0, 0, -1, 0, 0, 0, -1];
        var tilt = Rotations.Multiply(Rotations.MatrixFromVector(new Vec3(aboutXDeg * Deg, 0, 0)), Rotations.MatrixFromVector(new Vec3(0, aboutYDeg * Deg, 0)));
        var t = new Vec3((u - k.CxPx) / k.FxPx * depthMm, (v - k.CyPx) / k.FyPx * depthMm, depthMm);
        return Rotations.FromMatrix(Rotations.Multiply(tilt, facing), t);
    }

    /// <summary>
    /// <paramref name="count"/> views: a 3×3 grid of image positions tilted up to ±30° each way at
    /// 150 mm, then closer views at 120-130 mm; beyond 14, the same set again slightly shifted,
    /// nearer (down to the ~100 mm working distance) and steeper (up to 42°). Covers every image cell and tilt direction from 14 views on (for a 9×7 board of 6 mm).
    /// </summary>
    public static IReadOnlyList<RigidTransform> Poses(CameraIntrinsics k, int count)
    {
        ArgumentNullException.ThrowIfNull(k);
        double w = k.WidthPx, h = k.HeightPx;
        (double U, double V, double Z, double Ax, double Ay)[] views =
        [
            (0.50, 0.50, 150, 0, 0),
            (0.28, 0.30, 150, 25, -20),
            (0.72, 0.70, 150, -25, 20),
            (0.50, 0.30, 150, 30, 0),
            (0.50, 0.70, 150, -30, 0),
            (0.28, 0.50, 150, 0, -30),
            (0.72, 0.50, 150, 0, 30),
            (0.72, 0.30, 150, 25, 20),
            (0.28, 0.70, 150, -25, -20),
            (0.30, 0.35, 130, -15, 20),
            (0.70, 0.65, 130, 15, -20),
            (0.70, 0.35, 130, -20, -15),
            (0.30, 0.65, 130, 20, 15),
            (0.50, 0.50, 120, 10, 10),
        ];
        var poses = new List<RigidTransform>(count);
        for (var i = 0; i < count; i++)
        {
            var round = i / views.Length;
            var x = views[i % views.Length];
            var du = round == 0 ? 0 : 0.03 * Math.Sin(round * 1.7);
            var dv = round == 0 ? 0 : 0.03 * Math.Cos(round * 2.3);
            var da = round == 0 ? 0 : 4 * Math.Sin(round * 0.9);
            // Later rounds: nearer (the working distance) and steeper, which pins the focal length down.
            var depth = round == 0 ? x.Z : x.Z * (round % 2 == 1 ? 0.72 : 0.85);
            var steep = round == 0 ? 1.0 : 1.3;
            poses.Add(ViewPose(k, (x.U + du) * w, (x.V + dv) * h, depth, Math.Clamp((x.Ax * steep) + da, -42, 42), Math.Clamp((x.Ay * steep) - da, -42, 42)));
        }
        return poses;
    }
}
