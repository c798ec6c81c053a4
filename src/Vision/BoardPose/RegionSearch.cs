using OpenCvSharp;
using OpenCvSharp.Aruco;
using SmpRobot.Geometry;

namespace SmpRobot.Vision.BoardPose;

/// <summary>
/// Searches for the markers in a region around where the last pose puts the board. Markers are
/// found on a scaled-down grey copy of the region (most of the cost of marker detection is per
/// contour and per candidate, so a small image with a contour-length window fitted to the expected
/// marker size is much cheaper), then the chessboard corners are placed from them and refined at
/// full resolution (<see cref="CornersFromMarkers"/>). Not thread-safe. Owns its image buffers:
/// dispose it.
/// </summary>
internal sealed class RegionSearch : IDisposable
{
    private readonly BoardLayout _layout;
    private readonly CameraIntrinsics _intrinsics;
    private readonly BoardPoseOptions _options;
    private readonly CornersFromMarkers _cornersFromMarkers;
    private readonly Mat _regionGray = new();
    private readonly Mat _regionSmall = new();

    public RegionSearch(BoardLayout layout, CameraIntrinsics intrinsics, BoardPoseOptions options)
    {
        _layout = layout;
        _intrinsics = intrinsics;
        _options = options;
        _cornersFromMarkers = new CornersFromMarkers(layout, intrinsics);
    }

    /// <summary>
    /// Markers and corners in the region <see cref="BoardPoseOptions.RegionMarginFraction"/> around
    /// where <paramref name="last"/> puts the board in <paramref name="image"/>; null when the region
    /// is unusable (off the image, too small, the board behind the camera or too small to read).
    /// </summary>
    public BoardDetection? Search(Mat image, RigidTransform last)
    {
        var found = _layout.BoundsPx(last, _intrinsics, image.Size(), _options.RegionMarginFraction, 8);
        if (found is not { } region) return null;
        GreyRegion.CopyGrey(image, region, _regionGray);

        var sizes = _layout.MarkerSizesPx(last, _intrinsics);
        var markerSidePx = sizes.MeanSidePx;
        if (!(markerSidePx > 4)) return null;
        var scale = Math.Min(1.0, _options.TrackingMarkerSidePx / markerSidePx);
        var small = _regionGray;
        if (scale < 0.9)
        {
            Cv2.Resize(_regionGray, _regionSmall, new Size(), scale, scale, InterpolationFlags.Area);
            small = _regionSmall;
        }
        else
        {
            scale = 1;
        }

        // Most of the cost of marker detection is per candidate quad (decoding its bits), so keep
        // the candidates to the markers: a threshold window about a marker wide fills the board's
        // black squares solid (a small window leaves them hollow outlines whose holes are
        // marker-sized quads), and a contour-length window around the expected marker perimeters
        // drops the black squares (a third larger than the markers), stubble, noise and the board's
        // outline. Anything this misses sends the frame to the full search.
        var window = ((int)Math.Round(markerSidePx * scale) / 2 * 2) + 1;
        var maxSide = Math.Max(small.Cols, small.Rows);
        var parameters = new DetectorParameters
        {
            CornerRefinementMethod = CornerRefineMethod.None,
            AdaptiveThreshWinSizeMin = Math.Max(3, window),
            AdaptiveThreshWinSizeMax = Math.Max(3, window),
            AdaptiveThreshWinSizeStep = 10,
            MinMarkerPerimeterRate = sizes.MinPerimeterPx * scale * 0.6 / maxSide,
            MaxMarkerPerimeterRate = sizes.MaxPerimeterPx * scale * 1.15 / maxSide,
        };
        using var detector = new ArucoDetector(_layout.Board.Dictionary, parameters, new RefineParameters());
        detector.DetectMarkers(small, out var smallCorners, out var smallIds, out _);

        var markers = _cornersFromMarkers.FromScaled(smallCorners, smallIds, small.Size(), region);
        return _cornersFromMarkers.Detection(markers, _regionGray, region, markerSidePx / _layout.Board.Spec.MarkerMm);
    }

    public void Dispose()
    {
        _cornersFromMarkers.Dispose();
        _regionGray.Dispose();
        _regionSmall.Dispose();
    }
}
