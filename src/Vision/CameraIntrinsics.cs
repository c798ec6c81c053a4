using OpenCvSharp;
using SmpRobot.Geometry;

namespace SmpRobot.Vision;

/// <summary>
/// Pinhole camera with OpenCV's lens distortion model (k1, k2, p1, p2, k3), for one image size.
/// Camera frame C: X right, Y down, Z along the optical axis; mm.
/// </summary>
/// <param name="WidthPx">Image width the intrinsics belong to.</param>
/// <param name="HeightPx">Image height.</param>
/// <param name="FxPx">Focal length along x, px.</param>
/// <param name="FyPx">Focal length along y, px.</param>
/// <param name="CxPx">Principal point x, px.</param>
/// <param name="CyPx">Principal point y, px.</param>
/// <param name="Distortion">k1, k2, p1, p2, k3 (five values).</param>
public sealed record CameraIntrinsics(int WidthPx, int HeightPx, double FxPx, double FyPx, double CxPx, double CyPx, IReadOnlyList<double> Distortion)
{
    /// <summary>
    /// The synthetic camera: a ~49° horizontal field of view (fx = 1.094 × width), the principal
    /// point a little off centre and a mild barrel distortion, like a small USB camera with an
    /// M12 lens. Used by the synthetic scene and as the default before calibration exists.
    /// </summary>
    public static CameraIntrinsics Synthetic(int widthPx = 1280, int heightPx = 720)
    {
        var s = widthPx / 1280.0;
        return new CameraIntrinsics(widthPx, heightPx, 1400 * s, 1400 * s, 643.2 * s, 358.7 * s, [-0.12, 0.05, 0.0005, -0.0003, 0.0]);
    }

    /// <summary>3×3 camera matrix as a new CV_64F Mat (caller disposes).</summary>
    public Mat CameraMatrix()
    {
        var m = new Mat(3, 3, MatType.CV_64FC1, Scalar.All(0));
        m.Set(0, 0, FxPx);
        m.Set(1, 1, FyPx);
        m.Set(0, 2, CxPx);
        m.Set(1, 2, CyPx);
        m.Set(2, 2, 1.0);
        return m;
    }

    /// <summary>Camera matrix as a 2-D array (for OpenCvSharp's array overloads).</summary>
    public double[,] CameraMatrixArray() => new double[,] { { FxPx, 0, CxPx }, { 0, FyPx, CyPx }, { 0, 0, 1 } };

    /// <summary>1×5 distortion coefficients as a new CV_64F Mat (caller disposes).</summary>
    public Mat DistortionMat()
    {
        var m = new Mat(1, Distortion.Count, MatType.CV_64FC1);
        for (var i = 0; i < Distortion.Count; i++) m.Set(0, i, Distortion[i]);
        return m;
    }

    /// <summary>Projects a camera-frame point (mm, Z &gt; 0) to distorted pixel coordinates.</summary>
    public Point2d Project(Vec3 pC)
    {
        var x = pC.X / pC.Z;
        var y = pC.Y / pC.Z;
        var (xd, yd) = Distort(x, y);
        return new Point2d((FxPx * xd) + CxPx, (FyPx * yd) + CyPx);
    }

    /// <summary>Applies the distortion model to normalised image coordinates.</summary>
    public (double X, double Y) Distort(double x, double y)
    {
        double k1 = D(0), k2 = D(1), p1 = D(2), p2 = D(3), k3 = D(4);
        var r2 = (x * x) + (y * y);
        var radial = 1 + (k1 * r2) + (k2 * r2 * r2) + (k3 * r2 * r2 * r2);
        return ((x * radial) + (2 * p1 * x * y) + (p2 * (r2 + (2 * x * x))),
                (y * radial) + (p1 * (r2 + (2 * y * y))) + (2 * p2 * x * y));
    }

    private double D(int i) => i < Distortion.Count ? Distortion[i] : 0.0;
}
