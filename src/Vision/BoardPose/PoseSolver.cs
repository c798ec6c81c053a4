using OpenCvSharp;
using SmpRobot.Geometry;

namespace SmpRobot.Vision.BoardPose;

/// <summary>
/// T_CH from ChArUco corners: solvePnP on the board's known geometry (IPPE for a planar target,
/// or a given start pose, then Levenberg-Marquardt refinement), refused when the corners are too
/// few or on one line, the board lies behind the camera, or the RMS reprojection error exceeds
/// <see cref="BoardPoseOptions.MaxReprojectionErrorPx"/>.
/// Quality = sqrt(corners seen / board corners) × 1 / (1 + (reprojection error / HalfQualityErrorPx)²).
/// Holds no native resources.
/// </summary>
internal sealed class PoseSolver
{
    private readonly MarkerBoard _board;
    private readonly CameraIntrinsics _intrinsics;
    private readonly BoardPoseOptions _options;
    private readonly double[,] _cameraArray;
    private readonly double[] _distortionArray;

    public PoseSolver(MarkerBoard board, CameraIntrinsics intrinsics, BoardPoseOptions options)
    {
        _board = board;
        _intrinsics = intrinsics;
        _options = options;
        _cameraArray = intrinsics.CameraMatrixArray();
        _distortionArray = [.. intrinsics.Distortion];
    }

    /// <summary>
    /// The pose of <paramref name="d"/>'s corners (its markers only count toward
    /// <see cref="TrackedPose.MarkersSeen"/>), stamped <paramref name="capturedTimestamp"/>; null when
    /// refused. With <paramref name="guess"/> the refinement starts there instead of at IPPE's answer.
    /// </summary>
    public TrackedPose? Solve(BoardDetection d, long capturedTimestamp, RigidTransform? guess = null)
    {
        var n = d.CharucoIds.Length;
        if (n < Math.Max(4, _options.MinCorners) || n != d.CharucoCorners.Length) return null;
        var objectPoints = new Point3f[n];
        for (var i = 0; i < n; i++)
        {
            var id = d.CharucoIds[i];
            if (id < 0 || id >= _board.CornerCount) return null;
            var p = _board.CornerInHead(id);
            objectPoints[i] = new Point3f((float)p.X, (float)p.Y, (float)p.Z);
        }
        if (AllOnOneLine(objectPoints)) return null;

        var rvec = new double[3];
        var tvec = new double[3];
        if (guess is { } g)
        {
            var w = Rotations.VectorFromMatrix(Rotations.RotationMatrix(g));
            (rvec[0], rvec[1], rvec[2]) = (w.X, w.Y, w.Z);
            (tvec[0], tvec[1], tvec[2]) = (g.Translation.X, g.Translation.Y, g.Translation.Z);
        }
        else
        {
            Cv2.SolvePnP(objectPoints, d.CharucoCorners, _cameraArray, _distortionArray, ref rvec, ref tvec, false, SolvePnPMethod.IPPE);
        }
        Cv2.SolvePnP(objectPoints, d.CharucoCorners, _cameraArray, _distortionArray, ref rvec, ref tvec, true, SolvePnPMethod.Iterative);
        var pose = Rotations.FromRotationVector(new Vec3(rvec[0], rvec[1], rvec[2]), new Vec3(tvec[0], tvec[1], tvec[2]));
        if (!pose.Translation.IsFinite || pose.Translation.Z <= 0) return null;

        var error = ReprojectionRms(pose, objectPoints, d.CharucoCorners);
        if (!(error <= _options.MaxReprojectionErrorPx)) return null;
        var coverage = Math.Clamp(n / (double)_board.CornerCount, 0, 1);
        var errorFactor = 1 / (1 + Math.Pow(error / _options.HalfQualityErrorPx, 2));
        var markers = d.MarkerIds.Count(id => id >= 0 && id < _board.MarkerCount);
        return new TrackedPose(pose, capturedTimestamp, error, markers, Math.Sqrt(coverage) * errorFactor);
    }

    private double ReprojectionRms(RigidTransform pose, Point3f[] objectPoints, Point2f[] imagePoints)
    {
        var sum = 0.0;
        for (var i = 0; i < objectPoints.Length; i++)
        {
            var o = objectPoints[i];
            var p = _intrinsics.Project(pose.Apply(new Vec3(o.X, o.Y, o.Z)));
            var dx = p.X - imagePoints[i].X;
            var dy = p.Y - imagePoints[i].Y;
            sum += (dx * dx) + (dy * dy);
        }
        return Math.Sqrt(sum / objectPoints.Length);
    }

    private static bool AllOnOneLine(Point3f[] points)
    {
        var a = points[0];
        var far = points.MaxBy(p => ((p.X - a.X) * (p.X - a.X)) + ((p.Y - a.Y) * (p.Y - a.Y)));
        double dx = far.X - a.X, dy = far.Y - a.Y;
        var len = Math.Sqrt((dx * dx) + (dy * dy));
        if (len < 1e-6) return true;
        // Off-line distance above a tenth of a millimetre means the points span a plane.
        return points.All(p => Math.Abs((((p.X - a.X) * dy) - ((p.Y - a.Y) * dx)) / len) < 0.1);
    }
}
