using System.Runtime.InteropServices;
using OpenCvSharp;
using OpenCvSharp.Aruco;

namespace SmpRobot.Vision.BoardPose;

/// <summary>
/// Searches a whole frame for the board, without knowing where it was. <see cref="Detect"/> is
/// OpenCV's ChArUco detection at full resolution (markers, missed ones re-found from the board's
/// layout, corners refined again with cornerSubPix); <see cref="DetectCoarse"/> is the cheap first
/// try: markers on a scaled-down copy, taken only when the whole board shows. Not thread-safe. Owns
/// its detectors and image buffers: dispose it.
/// </summary>
internal sealed class FullFrameDetector : IDisposable
{
    private readonly BoardLayout _layout;
    private readonly BoardPoseOptions _options;
    private readonly Mat _cameraMatrix;
    private readonly Mat _distortion;
    private readonly CharucoDetector _detector;
    private readonly CornersFromMarkers _cornersFromMarkers;
    private readonly Mat _gray = new();
    private readonly Mat _coarseGray = new();
    private readonly Mat _coarseSmall = new();
    private ArucoDetector? _coarseDetector;

    public FullFrameDetector(BoardLayout layout, CameraIntrinsics intrinsics, BoardPoseOptions options)
    {
        _layout = layout;
        _options = options;
        _cameraMatrix = intrinsics.CameraMatrix();
        _distortion = intrinsics.DistortionMat();
        var detectorParameters = new DetectorParameters
        {
            CornerRefinementMethod = CornerRefineMethod.Subpix,
        };
        _detector = new CharucoDetector(layout.Board.Board, _cameraMatrix, _distortion, 2, options.RefineMarkers, true, detectorParameters, new RefineParameters());
        _cornersFromMarkers = new CornersFromMarkers(layout, intrinsics);
    }

    /// <summary>
    /// The classic full-resolution detection of <paramref name="image"/> (grey, BGR or BGRA); empty
    /// arrays when nothing is found.
    /// </summary>
    public BoardDetection Detect(Mat image)
    {
        var gray = ToGray(image);
        _detector.DetectBoard(gray, out var charucoCorners, out var charucoIds, out var markerCorners, out var markerIds);
        charucoCorners ??= [];
        markerCorners ??= [];
        if (charucoCorners.Length > 0) charucoCorners = RefineCorners(gray, charucoCorners, markerCorners);
        return new BoardDetection(markerCorners, markerIds ?? [], charucoCorners, charucoIds ?? []);
    }

    /// <summary>
    /// The coarse step of the full search: markers on a grey copy of the whole frame scaled by
    /// <see cref="BoardPoseOptions.CoarseSearchScale"/> (one threshold window, no corner refinement:
    /// most of the cost of marker detection is per pixel and per threshold pass), the chessboard
    /// corners placed from them and refined at full resolution. Null unless every marker of the
    /// board is found: a board seen in part (occluded, at the edge) goes to <see cref="Detect"/>,
    /// which re-finds missed markers from the board's layout.
    /// </summary>
    public BoardDetection? DetectCoarse(Mat image)
    {
        var region = new Rect(0, 0, image.Cols, image.Rows);
        GreyRegion.CopyGrey(image, region, _coarseGray);
        var scale = _options.CoarseSearchScale;
        Cv2.Resize(_coarseGray, _coarseSmall, new Size(), scale, scale, InterpolationFlags.Area);
        _coarseDetector ??= new ArucoDetector(_layout.Board.Dictionary, new DetectorParameters
        {
            CornerRefinementMethod = CornerRefineMethod.None,
            AdaptiveThreshWinSizeMin = _options.CoarseThresholdWindowPx,
            AdaptiveThreshWinSizeMax = _options.CoarseThresholdWindowPx,
        }, new RefineParameters());
        _coarseDetector.DetectMarkers(_coarseSmall, out var smallCorners, out var smallIds, out _);
        var markers = _cornersFromMarkers.FromScaled(smallCorners, smallIds, _coarseSmall.Size(), region);
        if (markers.Ids.Count < _layout.MarkerCount) return null;
        var pxPerMm = SubPixCorners.PxPerMm(_layout.Board.Spec, CollectionsMarshal.AsSpan(markers.Corners));
        return _cornersFromMarkers.Detection(markers, _coarseGray, region, pxPerMm);
    }

    private Mat ToGray(Mat image)
    {
        if (image.Channels() == 1) return image;
        Cv2.CvtColor(image, _gray, image.Channels() == 4 ? ColorConversionCodes.BGRA2GRAY : ColorConversionCodes.BGR2GRAY);
        return _gray;
    }

    /// <summary>
    /// OpenCV 4.13's CharucoDetector returns corners shifted by about +0.5 px (opencv/opencv #25539,
    /// fixed upstream after 4.13): refine them again with cornerSubPix, which converges on the true
    /// saddle point whatever the start.
    /// </summary>
    private Point2f[] RefineCorners(Mat gray, Point2f[] corners, Point2f[][] markerCorners)
    {
        var spec = _layout.Board.Spec;
        var pxPerMm = SubPixCorners.PxPerMm(spec, markerCorners);
        if (!(pxPerMm > 0)) return corners;
        return SubPixCorners.Refine(gray, corners, SubPixCorners.HalfWindowPx(spec, pxPerMm));
    }

    public void Dispose()
    {
        _detector.Dispose();
        _coarseDetector?.Dispose();
        _cornersFromMarkers.Dispose();
        _cameraMatrix.Dispose();
        _distortion.Dispose();
        _gray.Dispose();
        _coarseGray.Dispose();
        _coarseSmall.Dispose();
    }
}
