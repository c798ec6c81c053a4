using OpenCvSharp;
using OpenCvSharp.Aruco;
using SmpRobot.Vision.BoardPose;

namespace SmpRobot.Vision.Calibration;

/// <summary>The ChArUco corners found in one image: pixel positions and the board's corner ids, same order.</summary>
/// <param name="CornersPx">Sub-pixel corner positions (distorted image coordinates), px.</param>
/// <param name="CornerIds">Board corner id of each position (see <see cref="MarkerBoard.CornerInHead"/>).</param>
/// <param name="MarkersSeen">Markers detected, for diagnostics.</param>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1819", Justification = "OpenCV's own shapes, handed straight to calibrateCamera and solvePnP")]
public sealed record CharucoCorners(Point2f[] CornersPx, int[] CornerIds, int MarkersSeen)
{
    /// <summary>Number of corners.</summary>
    public int Count => CornerIds.Length;
}

/// <summary>
/// Finds ChArUco corners without knowing the camera (for intrinsics calibration): markers with
/// sub-pixel refinement, corners interpolated through each marker's local homography (so lens
/// distortion does not matter), then every corner refined again with cornerSubPix because OpenCV
/// 4.13's CharucoDetector shifts corners by about +0.5 px (see <see cref="BoardPoseEstimator"/>).
/// Not thread-safe. Owns native objects: dispose it.
/// </summary>
public sealed class CharucoCornerFinder : IDisposable
{
    private readonly MarkerBoard _board;
    private readonly CharucoDetector _detector;
    private readonly Mat _gray = new();

    public CharucoCornerFinder(MarkerBoard board)
    {
        ArgumentNullException.ThrowIfNull(board);
        _board = board;
        var detectorParameters = new DetectorParameters { CornerRefinementMethod = CornerRefineMethod.Subpix };
        // No camera matrix: corners come from local homographies, which hold under any distortion.
        using var noCamera = new Mat();
        using var noDistortion = new Mat();
        _detector = new CharucoDetector(board.Board, noCamera, noDistortion, 2, true, true, detectorParameters, new RefineParameters());
    }

    /// <summary>Detects the board's corners in a grey or BGR(A) image; an empty result when none are found.</summary>
    public CharucoCorners Find(Mat image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var gray = image;
        if (image.Channels() != 1)
        {
            Cv2.CvtColor(image, _gray, image.Channels() == 4 ? ColorConversionCodes.BGRA2GRAY : ColorConversionCodes.BGR2GRAY);
            gray = _gray;
        }
        _detector.DetectBoard(gray, out var corners, out var ids, out var markerCorners, out var markerIds);
        corners ??= [];
        ids ??= [];
        markerCorners ??= [];
        if (corners.Length == 0 || corners.Length != ids.Length) return new CharucoCorners([], [], markerIds?.Length ?? 0);
        corners = Refine(gray, corners, markerCorners);
        // Keep only ids of this board (a foreign board of the same dictionary could leak in).
        var keep = Enumerable.Range(0, ids.Length).Where(i => ids[i] >= 0 && ids[i] < _board.CornerCount).ToArray();
        return new CharucoCorners([.. keep.Select(i => corners[i])], [.. keep.Select(i => ids[i])], markerIds?.Length ?? 0);
    }

    private Point2f[] Refine(Mat gray, Point2f[] corners, Point2f[][] markerCorners)
    {
        // Window inside the white margin around the markers, so marker edges do not pull the corner (the tracker's rule).
        var pxPerMm = SubPixCorners.PxPerMm(_board.Spec, markerCorners);
        if (pxPerMm <= 0) return corners;
        var half = SubPixCorners.HalfWindowPx(_board.Spec, pxPerMm);
        return SubPixCorners.Refine(gray, corners, half);
    }

    public void Dispose()
    {
        _detector.Dispose();
        _gray.Dispose();
    }
}
