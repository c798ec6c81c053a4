namespace SmpRobot.Vision;

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
