using OpenCvSharp;

namespace SmpRobot.Vision;

/// <summary>Options of <see cref="HeadTracker"/>.</summary>
public sealed record HeadTrackerOptions
{
    public BoardPoseOptions Detection { get; init; } = new();
    public PoseFilterOptions Filter { get; init; } = new();

    /// <summary>Filtered measurements needed before the pose is trusted (quality stays 0 until then). Default 2.</summary>
    public int MinMeasurementsForTrust { get; init; } = 2;
}

/// <summary>How the tracker's frames found their pose so far (see <see cref="BoardPoseEstimator"/>).</summary>
/// <param name="CornerFollows">Frames whose corners were followed from the last pose (the cheap path).</param>
/// <param name="RegionSearches">Frames whose markers were searched for near the last pose.</param>
/// <param name="FullFrameSearches">Frames searched whole (first sighting, after a miss, a fallback, or the periodic check).</param>
public sealed record TrackingSearchCounts(long CornerFollows, long RegionSearches, long FullFrameSearches);

/// <summary>What tracking made of one frame.</summary>
/// <param name="Raw">The board pose of this frame; null when the board was not found (lost).</param>
/// <param name="Filtered">The filter's state after this frame; null when the head has never been seen (or after a long gap).</param>
/// <param name="Detection">Markers and corners found (for pictures).</param>
public sealed record TrackingResult(TrackedPose? Raw, FilteredPose? Filtered, BoardDetection Detection);

/// <summary>
/// Board detection + pose + constant-velocity filter for one camera. Feed frames in capture order
/// with <see cref="Process"/>; ask <see cref="Predict"/> for the pose at "now". Not thread-safe.
/// </summary>
public sealed class HeadTracker : IDisposable
{
    private readonly BoardPoseEstimator _estimator;
    private readonly PoseFilter _filter;
    private readonly HeadTrackerOptions _options;

    public HeadTracker(MarkerBoard board, CameraIntrinsics intrinsics, TimeProvider timeProvider, HeadTrackerOptions? options = null)
    {
        _options = options ?? new HeadTrackerOptions();
        _estimator = new BoardPoseEstimator(board, intrinsics, _options.Detection);
        _filter = new PoseFilter(timeProvider, _options.Filter);
        Board = board;
        Intrinsics = intrinsics;
    }

    public MarkerBoard Board { get; }
    public CameraIntrinsics Intrinsics { get; }

    /// <summary>The last raw pose; null when the last frame showed no board.</summary>
    public TrackedPose? LastRaw { get; private set; }

    /// <summary>True when the last frame gave a pose and the filter has enough history to trust.</summary>
    public bool Trusted => LastRaw is not null && _filter.MeasurementCount >= _options.MinMeasurementsForTrust;

    /// <summary>Times a jerk restarted the filter.</summary>
    public int JerkCount => _filter.JerkCount;

    /// <summary>How frames found their pose so far: followed, searched near the last pose, or searched whole.</summary>
    public TrackingSearchCounts SearchCounts => new(_estimator.CornerFollows, _estimator.RegionSearches, _estimator.FullFrameSearches);

    /// <summary>Detects the board in <paramref name="image"/> (BGR or grey) captured at <paramref name="capturedTimestamp"/> and updates the filter.</summary>
    public TrackingResult Process(Mat image, long capturedTimestamp)
    {
        var (raw, detection) = Detect(image, capturedTimestamp);
        return Fold(raw, detection, capturedTimestamp);
    }

    /// <summary>
    /// First half of <see cref="Process"/>: the slow part (detection and pose), touching no filter
    /// state. The detector tracks the board from frame to frame, so call it for every frame in
    /// capture order.
    /// </summary>
    public (TrackedPose? Raw, BoardDetection Detection) Detect(Mat image, long capturedTimestamp)
    {
        var raw = _estimator.Estimate(image, capturedTimestamp);
        return (raw, _estimator.LastDetection!);
    }

    /// <summary>Second half of <see cref="Process"/>: folds a raw pose (or a miss) into the filter. Quick.</summary>
    public TrackingResult Fold(TrackedPose? raw, BoardDetection detection, long capturedTimestamp)
    {
        LastRaw = raw;
        var filtered = raw is null ? _filter.PredictTo(capturedTimestamp) : _filter.Update(raw.CameraFromHead, capturedTimestamp);
        return new TrackingResult(raw, filtered, detection);
    }

    /// <summary>The filtered pose extrapolated to <paramref name="now"/>; null before the first sighting.</summary>
    public FilteredPose? Predict(long now) => _filter.PredictTo(now);

    public void Dispose() => _estimator.Dispose();
}
