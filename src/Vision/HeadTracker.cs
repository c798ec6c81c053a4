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

    /// <summary>Detects the board in <paramref name="image"/> (BGR or grey) captured at <paramref name="capturedTimestamp"/> and updates the filter.</summary>
    public TrackingResult Process(Mat image, long capturedTimestamp)
    {
        var (raw, detection) = Detect(image, capturedTimestamp);
        return Fold(raw, detection, capturedTimestamp);
    }

    /// <summary>First half of <see cref="Process"/>: the slow part (detection and pose), touching no filter state.</summary>
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

/// <summary>
/// <see cref="IHeadPoseSource"/> from a camera: reads frames, tracks the board, and reports
/// T_GH = T_GC · T_CH(predicted to now) with the capture timestamp of the frame it came from, the
/// filter's head speed, and the quality of the last frame (0 while the board is lost or the filter
/// has not settled). <see cref="Latest"/> may be called from any thread.
/// </summary>
public sealed class TrackedHeadPoseSource : IHeadPoseSource, IDisposable
{
    private readonly IFrameSource _frames;
    private readonly HeadTracker _tracker;
    private readonly RigidTransform _gantryFromCamera;
    private readonly TimeProvider _timeProvider;
    private readonly Lock _lock = new();
    private long _lastFrameTimestamp;
    private double _lastQuality;
    private bool _seen;

    /// <summary>
    /// Tracks <paramref name="board"/> in <paramref name="frames"/>. Intrinsics default to the
    /// source's own (synthetic scenes); a camera needs them given. Takes ownership of
    /// <paramref name="frames"/> (disposed with this).
    /// </summary>
    public TrackedHeadPoseSource(IFrameSource frames, MarkerBoard board, RigidTransform gantryFromCamera, TimeProvider timeProvider, CameraIntrinsics? intrinsics = null, HeadTrackerOptions? options = null)
    {
        var k = intrinsics ?? frames.Intrinsics ?? throw new ArgumentException($"frame source {frames.Description} has no intrinsics; calibrate the camera and pass them");
        _frames = frames;
        _gantryFromCamera = gantryFromCamera;
        _timeProvider = timeProvider;
        _tracker = new HeadTracker(board, k, timeProvider, options);
    }

    public string Description => "tracked:" + _frames.Description;

    /// <summary>T_GC given at construction.</summary>
    public RigidTransform GantryFromCamera => _gantryFromCamera;

    /// <summary>Reads and tracks one frame. Returns null at the end of a recording. Call from one thread.</summary>
    public TrackingResult? ProcessNextFrame()
    {
        using var frame = _frames.Read();
        if (frame is null) return null;
        var (raw, detection) = _tracker.Detect(frame.Image, frame.CapturedTimestamp);
        TrackingResult result;
        lock (_lock)
        {
            result = _tracker.Fold(raw, detection, frame.CapturedTimestamp);
            _lastFrameTimestamp = frame.CapturedTimestamp;
            _lastQuality = _tracker.Trusted ? result.Raw!.Quality : 0.0;
            _seen |= result.Filtered is not null;
        }
        return result;
    }

    /// <summary>
    /// Tracks frames until cancelled or the recording ends. Sources that do not pace themselves are
    /// read once per frame interval on the TimeProvider's clock.
    /// </summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var timer = _frames.PacesItself ? null : new PeriodicTimer(_frames.FrameInterval, _timeProvider);
        while (!cancellationToken.IsCancellationRequested)
        {
            if (ProcessNextFrame() is null) return;
            if (timer is not null && !await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false)) return;
        }
    }

    /// <summary>
    /// The freshest pose, predicted to now: null until the board has been seen. Its timestamp is the
    /// last frame's capture (a lost board keeps aging the pose and reports quality 0).
    /// </summary>
    public HeadPoseSample? Latest()
    {
        long frameTs;
        double quality;
        FilteredPose? predicted;
        lock (_lock)
        {
            if (!_seen) return null;
            frameTs = _lastFrameTimestamp;
            quality = _lastQuality;
            predicted = _tracker.Predict(_timeProvider.GetTimestamp());
        }
        if (predicted is null) return null;
        return new HeadPoseSample(_gantryFromCamera * predicted.CameraFromHead, frameTs, quality, predicted.HeadSpeedMmPerS);
    }

    public void Dispose()
    {
        _tracker.Dispose();
        _frames.Dispose();
    }
}
