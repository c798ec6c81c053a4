using OpenCvSharp;
using OpenCvSharp.Aruco;

namespace SmpRobot.Vision;

/// <summary>
/// One raw board pose from one frame.
/// </summary>
/// <param name="CameraFromHead">T_CH: head frame H (the board) in camera frame C, mm.</param>
/// <param name="CapturedTimestamp">TimeProvider timestamp of the frame.</param>
/// <param name="ReprojectionErrorPx">RMS distance between the detected ChArUco corners and the board's corners projected with this pose, px.</param>
/// <param name="MarkersSeen">Markers detected (of the board's).</param>
/// <param name="Quality">0 (lost) .. 1: corner coverage and reprojection error combined (see <see cref="BoardPoseEstimator"/>).</param>
public sealed record TrackedPose(RigidTransform CameraFromHead, long CapturedTimestamp, double ReprojectionErrorPx, int MarkersSeen, double Quality);

/// <summary>What the detector found in one frame (for pictures and diagnostics).</summary>
public sealed record BoardDetection(Point2f[][] MarkerCorners, int[] MarkerIds, Point2f[] CharucoCorners, int[] CharucoIds);

/// <summary>Detection settings.</summary>
public sealed record BoardPoseOptions
{
    /// <summary>Fewest ChArUco corners for a pose (at least 4, not all on one line). Default 4.</summary>
    public int MinCorners { get; init; } = 4;

    /// <summary>A pose whose RMS reprojection error exceeds this is refused (px). Default 2.</summary>
    public double MaxReprojectionErrorPx { get; init; } = 2.0;

    /// <summary>Reprojection error at which the quality's error factor falls to one half (px). Default 1.</summary>
    public double HalfQualityErrorPx { get; init; } = 1.0;

    /// <summary>Re-find missed markers from the board layout (helps under partial occlusion, costs time). Default true.</summary>
    public bool RefineMarkers { get; init; } = true;
}

/// <summary>
/// Finds the ChArUco board in a frame (ArUco markers with sub-pixel corner refinement, then the
/// chessboard corners between them, refined to sub-pixel) and solves its pose with solvePnP on the
/// board's known geometry (IPPE for planar targets, then Levenberg-Marquardt refinement).
/// Quality = sqrt(corners seen / board corners) × 1 / (1 + (reprojection error / HalfQualityErrorPx)²).
/// Not thread-safe. Owns native objects: dispose it.
/// </summary>
public sealed class BoardPoseEstimator : IDisposable
{
    private readonly MarkerBoard _board;
    private readonly CameraIntrinsics _intrinsics;
    private readonly BoardPoseOptions _options;
    private readonly CharucoDetector _detector;
    private readonly Mat _cameraMatrix;
    private readonly Mat _distortion;
    private readonly double[,] _cameraArray;
    private readonly double[] _distortionArray;
    private readonly Mat _gray = new();

    public BoardPoseEstimator(MarkerBoard board, CameraIntrinsics intrinsics, BoardPoseOptions? options = null)
    {
        _board = board;
        _intrinsics = intrinsics;
        _options = options ?? new BoardPoseOptions();
        _cameraMatrix = intrinsics.CameraMatrix();
        _distortion = intrinsics.DistortionMat();
        _cameraArray = intrinsics.CameraMatrixArray();
        _distortionArray = [.. intrinsics.Distortion];
        var detectorParameters = new DetectorParameters
        {
            CornerRefinementMethod = CornerRefineMethod.Subpix,
        };
        _detector = new CharucoDetector(board.Board, _cameraMatrix, _distortion, 2, _options.RefineMarkers, true, detectorParameters, new RefineParameters());
    }

    /// <summary>The detections of the last <see cref="Estimate"/> call.</summary>
    public BoardDetection? LastDetection { get; private set; }

    /// <summary>Intrinsics used for the pose.</summary>
    public CameraIntrinsics Intrinsics => _intrinsics;

    /// <summary>Detects the board only (no pose).</summary>
    public BoardDetection Detect(Mat image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var gray = image;
        if (image.Channels() != 1)
        {
            Cv2.CvtColor(image, _gray, image.Channels() == 4 ? ColorConversionCodes.BGRA2GRAY : ColorConversionCodes.BGR2GRAY);
            gray = _gray;
        }
        _detector.DetectBoard(gray, out var charucoCorners, out var charucoIds, out var markerCorners, out var markerIds);
        charucoCorners ??= [];
        markerCorners ??= [];
        if (charucoCorners.Length > 0) charucoCorners = RefineCorners(gray, charucoCorners, markerCorners);
        var detection = new BoardDetection(markerCorners, markerIds ?? [], charucoCorners, charucoIds ?? []);
        LastDetection = detection;
        return detection;
    }

    /// <summary>
    /// Detects the board and solves T_CH. Null when the board is not found well enough for a pose
    /// (too few corners, corners on one line, or a reprojection error above the limit).
    /// </summary>
    public TrackedPose? Estimate(Mat image, long capturedTimestamp)
    {
        var d = Detect(image);
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
        Cv2.SolvePnP(objectPoints, d.CharucoCorners, _cameraArray, _distortionArray, ref rvec, ref tvec, false, SolvePnPMethod.IPPE);
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

    /// <summary>
    /// OpenCV 4.13's CharucoDetector returns corners shifted by about +0.5 px (opencv/opencv #25539,
    /// fixed upstream after 4.13): refine them again with cornerSubPix, which converges on the true
    /// saddle point whatever the start. The window stays inside the white margin around the markers,
    /// so marker edges do not pull the corner.
    /// </summary>
    private Point2f[] RefineCorners(Mat gray, Point2f[] corners, Point2f[][] markerCorners)
    {
        var pxPerMm = 0.0;
        var sides = 0;
        foreach (var m in markerCorners)
        {
            for (var i = 0; i < m.Length; i++)
            {
                var a = m[i];
                var b = m[(i + 1) % m.Length];
                pxPerMm += Math.Sqrt(((a.X - b.X) * (a.X - b.X)) + ((a.Y - b.Y) * (a.Y - b.Y))) / _board.Spec.MarkerMm;
                sides++;
            }
        }
        if (sides == 0) return corners;
        pxPerMm /= sides;
        var marginPx = (_board.Spec.SquareMm - _board.Spec.MarkerMm) / 2 * pxPerMm;
        var half = (int)Math.Clamp(Math.Floor(marginPx * 0.8), 2, 10);
        return Cv2.CornerSubPix(gray, corners, new Size(half, half), new Size(-1, -1), new TermCriteria(CriteriaTypes.Count | CriteriaTypes.Eps, 40, 0.001));
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

    public void Dispose()
    {
        _detector.Dispose();
        _cameraMatrix.Dispose();
        _distortion.Dispose();
        _gray.Dispose();
    }
}
