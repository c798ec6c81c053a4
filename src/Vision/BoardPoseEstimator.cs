using OpenCvSharp;
using SmpRobot.Geometry;
using SmpRobot.Vision.BoardPose;

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
[System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1819", Justification = "OpenCV's own shapes: the detector's outputs as OpenCV returns them and OpenCV's drawing calls take them; copies per frame would serve nothing")]
public sealed record BoardDetection(Point2f[][] MarkerCorners, int[] MarkerIds, Point2f[] CharucoCorners, int[] CharucoIds);

/// <summary>
/// Finds the ChArUco board in a frame (ArUco markers, then the chessboard corners between them,
/// refined to sub-pixel at full resolution) and solves its pose with solvePnP on the board's known
/// geometry (IPPE for planar targets, then Levenberg-Marquardt refinement).
/// Quality = sqrt(corners seen / board corners) × 1 / (1 + (reprojection error / HalfQualityErrorPx)²).
/// <see cref="Estimate"/> tracks when fed frames in capture order: after a pose it tries, cheapest
/// first, (1) following the corners from the predicted pose, checked by reading every marker's
/// cells, (2) a marker search in a scaled-down region around the last pose, (3) the whole frame,
/// coarse first (see <see cref="BoardPoseOptions.TrackInRegion"/>). <see cref="Detect"/> always
/// searches the whole frame. Not thread-safe. Owns native objects: dispose it.
/// </summary>
/// <remarks>
/// This class decides which search to try in which order and keeps the tracking state; the searches
/// themselves are in <c>Vision/BoardPose/</c>: <c>CornerFollower</c>, <c>RegionSearch</c>,
/// <c>FullFrameDetector</c> (fine and coarse), and <c>PoseSolver</c>.
/// </remarks>
public sealed class BoardPoseEstimator : IDisposable
{
    private readonly CameraIntrinsics _intrinsics;
    private readonly BoardPoseOptions _options;
    private readonly PoseSolver _solver;
    private readonly FullFrameDetector _fullFrame;
    private readonly RegionSearch _regionSearch;
    private readonly CornerFollower _follower;

    // Tracking state: the poses found by Estimate, and frames since the whole frame was last searched.
    private readonly PoseHistory _history = new();
    private int _framesSinceFullSearch;

    public BoardPoseEstimator(MarkerBoard board, CameraIntrinsics intrinsics, BoardPoseOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(intrinsics);
        _intrinsics = intrinsics;
        _options = options ?? new BoardPoseOptions();
        var layout = new BoardLayout(board);
        _solver = new PoseSolver(board, intrinsics, _options);
        _fullFrame = new FullFrameDetector(layout, intrinsics, _options);
        _regionSearch = new RegionSearch(layout, intrinsics, _options);
        _follower = new CornerFollower(layout, intrinsics, _options, _solver);
    }

    /// <summary>The detections of the last <see cref="Estimate"/> or <see cref="Detect"/> call.</summary>
    public BoardDetection? LastDetection { get; private set; }

    /// <summary>Intrinsics used for the pose.</summary>
    public CameraIntrinsics Intrinsics => _intrinsics;

    /// <summary>True when the last <see cref="Estimate"/> searched the whole frame (no pose to track from, the region fell short, or the periodic full search).</summary>
    public bool LastSearchWasFullFrame { get; private set; }

    /// <summary><see cref="Estimate"/> calls that searched the whole frame, since construction.</summary>
    public long FullFrameSearches { get; private set; }

    /// <summary>Full-frame searches that the coarse-to-fine search answered (the classic detection was not needed), since construction.</summary>
    public long CoarseFullSearches { get; private set; }

    /// <summary><see cref="Estimate"/> calls that found their pose by searching for markers in the tracking region, since construction.</summary>
    public long RegionSearches { get; private set; }

    /// <summary><see cref="Estimate"/> calls that found their pose by following the corners from the last pose (no marker search), since construction.</summary>
    public long CornerFollows { get; private set; }

    /// <summary>Forgets the last pose: the next <see cref="Estimate"/> searches the whole frame.</summary>
    public void ResetTracking() => _history.Forget();

    /// <summary>Detects the board only (no pose), searching the whole frame. Does not change the tracking state.</summary>
    public BoardDetection Detect(Mat image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var detection = _fullFrame.Detect(image);
        LastDetection = detection;
        return detection;
    }

    /// <summary>
    /// Detects the board and solves T_CH. Null when the board is not found well enough for a pose
    /// (too few corners, corners on one line, or a reprojection error above the limit). Frames must
    /// come in capture order: the search starts near the last pose found (see
    /// <see cref="BoardPoseOptions.TrackInRegion"/>); call <see cref="ResetTracking"/> between
    /// unrelated images.
    /// </summary>
    public TrackedPose? Estimate(Mat image, long capturedTimestamp)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (_options.TrackInRegion && _history.Last is { } last && _framesSinceFullSearch + 1 < Math.Max(1, _options.FullFrameEveryFrames))
        {
            _framesSinceFullSearch++;
            LastSearchWasFullFrame = false;
            var followed = _follower.Follow(image, _history.Extrapolate(capturedTimestamp), capturedTimestamp, _history.LastMarkers);
            if (followed is not null)
            {
                CornerFollows++;
                _history.Remember(followed.Value.Pose);
                LastDetection = followed.Value.Detection;
                return followed.Value.Pose;
            }
            // A region search that shows fewer markers than the last frame did may have missed the
            // board moving on: the whole frame decides.
            var regional = _regionSearch.Search(image, last);
            if (regional is not null && regional.MarkerIds.Length >= _history.LastMarkers)
            {
                var pose = _solver.Solve(regional, capturedTimestamp);
                if (pose is not null)
                {
                    RegionSearches++;
                    _history.Remember(pose);
                    LastDetection = regional;
                    return pose;
                }
            }
        }

        LastSearchWasFullFrame = true;
        FullFrameSearches++;
        _framesSinceFullSearch = 0;
        TrackedPose? found = null;
        var detection = _options.CoarseFullSearch ? _fullFrame.DetectCoarse(image) : null;
        if (detection is not null) found = _solver.Solve(detection, capturedTimestamp);
        if (found is null)
        {
            detection = Detect(image);
            found = _solver.Solve(detection, capturedTimestamp);
        }
        else
        {
            CoarseFullSearches++;
        }
        LastDetection = detection;
        if (found is null) _history.Forget();
        else _history.Remember(found);
        return found;
    }

    public void Dispose()
    {
        _follower.Dispose();
        _regionSearch.Dispose();
        _fullFrame.Dispose();
    }
}
