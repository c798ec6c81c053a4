using OpenCvSharp;
using OpenCvSharp.Aruco;
using SmpRobot.Geometry;

namespace SmpRobot.Vision;

/// <summary>Camera preview pictures: the frame with detected markers, ChArUco corners and the head frame's axes drawn on it.</summary>
public static class TrackingPreview
{
    /// <summary>
    /// Draws on a copy of <paramref name="frame"/> (BGR): markers with ids, ChArUco corners, the
    /// head frame's X/Y/Z axes (red/green/blue, <paramref name="axisLengthMm"/> long) when a pose is
    /// given, and a status line. The caller disposes the result.
    /// </summary>
    public static Mat Draw(Mat frame, BoardDetection? detection, TrackedPose? pose, CameraIntrinsics? intrinsics, double axisLengthMm = 10)
    {
        ArgumentNullException.ThrowIfNull(frame);
        var image = frame.Channels() == 3 ? frame.Clone() : Gray2Bgr(frame);
        if (detection is not null)
        {
            if (detection.MarkerCorners.Length > 0) CvAruco.DrawDetectedMarkers(image, detection.MarkerCorners, detection.MarkerIds, new Scalar(0, 255, 0));
            if (detection.CharucoCorners.Length > 0) CvAruco.DrawDetectedCornersCharuco(image, detection.CharucoCorners, detection.CharucoIds, new Scalar(255, 0, 255));
        }
        if (pose is not null && intrinsics is not null)
        {
            var t = pose.CameraFromHead;
            var o = ToPoint(intrinsics.Project(t.Apply(Vec3.Zero)));
            Cv2.ArrowedLine(image, o, ToPoint(intrinsics.Project(t.Apply(new Vec3(axisLengthMm, 0, 0)))), new Scalar(0, 0, 255), 2, LineTypes.AntiAlias);
            Cv2.ArrowedLine(image, o, ToPoint(intrinsics.Project(t.Apply(new Vec3(0, axisLengthMm, 0)))), new Scalar(0, 255, 0), 2, LineTypes.AntiAlias);
            Cv2.ArrowedLine(image, o, ToPoint(intrinsics.Project(t.Apply(new Vec3(0, 0, axisLengthMm)))), new Scalar(255, 0, 0), 2, LineTypes.AntiAlias);
        }
        var status = intrinsics is null
            ? "no intrinsics: not tracking (smp calibrate intrinsics, or smp-controller --intrinsics FILE)"
            : pose is null
            ? "board lost"
            : FormattableString.Invariant($"T_CH t=({pose.CameraFromHead.Translation.X:0.00}, {pose.CameraFromHead.Translation.Y:0.00}, {pose.CameraFromHead.Translation.Z:0.00}) mm  reproj {pose.ReprojectionErrorPx:0.00} px  markers {pose.MarkersSeen}  quality {pose.Quality:0.00}");
        Cv2.PutText(image, status, new Point(12, 28), HersheyFonts.HersheySimplex, 0.6, pose is null ? new Scalar(0, 0, 255) : new Scalar(255, 255, 255), 1, LineTypes.AntiAlias);
        return image;
    }

    /// <summary>Draws (see <see cref="Draw"/>) and writes a PNG; returns its pixel size.</summary>
    public static Size WritePng(string path, Mat frame, BoardDetection? detection, TrackedPose? pose, CameraIntrinsics intrinsics)
    {
        using var image = Draw(frame, detection, pose, intrinsics);
        if (!Cv2.ImWrite(path, image)) throw new IOException($"could not write {path}");
        return image.Size();
    }

    private static Mat Gray2Bgr(Mat gray)
    {
        var bgr = new Mat();
        Cv2.CvtColor(gray, bgr, ColorConversionCodes.GRAY2BGR);
        return bgr;
    }

    private static Point ToPoint(Point2d p) => new((int)Math.Round(p.X), (int)Math.Round(p.Y));
}
