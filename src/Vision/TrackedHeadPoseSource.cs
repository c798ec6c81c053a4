using OpenCvSharp;
using SmpRobot.Geometry;

namespace SmpRobot.Vision;

/// <summary>The tracker's view of its last frame, for status displays.</summary>
/// <param name="Camera">The frame source ("synthetic:sway", "device:0", ...).</param>
/// <param name="FrameTimestamp">TimeProvider timestamp of the last frame's capture.</param>
/// <param name="BoardFound">False when the last frame gave no pose (board lost or too few corners).</param>
/// <param name="MarkersSeen">Markers detected in the last frame.</param>
/// <param name="CornersSeen">ChArUco corners interpolated in the last frame.</param>
/// <param name="ReprojectionErrorPx">RMS reprojection error of the last pose, px; NaN without a pose.</param>
/// <param name="Quality">0..1 as published to placement (0 while lost or unsettled).</param>
/// <param name="HeadSpeedMmPerS">Filtered head speed; NaN before the first sighting.</param>
/// <param name="FramesProcessed">Frames tracked since start.</param>
/// <param name="FramesLost">Frames without a pose since start.</param>
/// <param name="Jerks">Times a jerk restarted the filter.</param>
public sealed record TrackingSnapshot(string Camera, long FrameTimestamp, bool BoardFound, int MarkersSeen, int CornersSeen, double ReprojectionErrorPx, double Quality, double HeadSpeedMmPerS, long FramesProcessed, long FramesLost, int Jerks);

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
    private RigidTransform _gantryFromCamera;
    private readonly TimeProvider _timeProvider;
    private readonly Lock _lock = new();
    // Held while a frame is read and tracked, so Dispose never frees what a frame in progress uses.
    private readonly Lock _processing = new();
    private bool _disposed;
    private long _lastFrameTimestamp;
    private double _lastQuality;
    private bool _seen;
    private Frame? _lastFrame;
    private TrackingResult? _lastResult;
    private long _framesProcessed;
    private long _framesLost;

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

    public bool IsTracking => true;

    /// <summary>The clock frames are stamped and poses predicted on (the TimeProvider given at construction).</summary>
    public TimeProvider Clock => _timeProvider;

    /// <summary>The frame source being tracked.</summary>
    public IFrameSource Frames => _frames;

    public event EventHandler? PoseUpdated;

    /// <summary>T_GC in use: given at construction, or the last one set with <see cref="SetGantryFromCamera"/>.</summary>
    public RigidTransform GantryFromCamera { get { lock (_lock) return _gantryFromCamera; } }

    /// <summary>Replaces T_GC (a new calibration); every pose from now on uses it. Thread-safe.</summary>
    public void SetGantryFromCamera(RigidTransform gantryFromCamera)
    {
        lock (_lock) _gantryFromCamera = gantryFromCamera;
    }

    /// <summary>Reads and tracks one frame. Returns null at the end of a recording. Call from one thread.</summary>
    public TrackingResult? ProcessNextFrame()
    {
        lock (_processing)
        {
            return _disposed ? null : ProcessNextFrameCore();
        }
    }

    private TrackingResult? ProcessNextFrameCore()
    {
        var frame = _frames.Read();
        if (frame is null) return null;
        var (raw, detection) = _tracker.Detect(frame.Image, frame.CapturedTimestamp);
        TrackingResult result;
        Frame? previous;
        lock (_lock)
        {
            result = _tracker.Fold(raw, detection, frame.CapturedTimestamp);
            _lastFrameTimestamp = frame.CapturedTimestamp;
            _lastQuality = _tracker.Trusted ? result.Raw!.Quality : 0.0;
            _seen |= result.Filtered is not null;
            // The last frame is kept (not copied) for previews; the one it replaces is released.
            previous = _lastFrame;
            _lastFrame = frame;
            _lastResult = result;
            _framesProcessed++;
            if (raw is null) _framesLost++;
        }
        previous?.Dispose();
        PoseUpdated?.Invoke(this, EventArgs.Empty);
        return result;
    }

    /// <summary>
    /// What the tracker made of the last frame: markers and corners seen, reprojection error,
    /// quality, and counts; null before the first frame.
    /// </summary>
    public TrackingSnapshot? Snapshot()
    {
        lock (_lock)
        {
            if (_lastResult is null) return null;
            var raw = _lastResult.Raw;
            return new TrackingSnapshot(Description, _lastFrameTimestamp, raw is not null, raw?.MarkersSeen ?? _lastResult.Detection.MarkerIds.Length,
                _lastResult.Detection.CharucoIds.Length, raw?.ReprojectionErrorPx ?? double.NaN, _lastQuality, _lastResult.Filtered?.HeadSpeedMmPerS ?? double.NaN,
                _framesProcessed, _framesLost, _tracker.JerkCount);
        }
    }

    /// <summary>
    /// The last processed frame as a PNG with the detected markers, ChArUco corners and the head
    /// frame's axes drawn (see <see cref="TrackingPreview.Draw"/>); null before the first frame.
    /// </summary>
    public byte[]? PreviewPng()
    {
        lock (_lock)
        {
            if (_lastFrame is null || _lastResult is null) return null;
            using var drawn = TrackingPreview.Draw(_lastFrame.Image, _lastResult.Detection, _lastResult.Raw, _tracker.Intrinsics);
            return drawn.ImEncode(".png");
        }
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
    /// The freshest pose, predicted to now + <paramref name="lookAhead"/> (bounded by the filter's
    /// MaxPredictionMs past the last frame): null until the board has been seen. Its timestamp is the
    /// last frame's capture (a lost board keeps aging the pose and reports quality 0).
    /// </summary>
    public HeadPoseSample? Latest(TimeSpan lookAhead = default)
    {
        long frameTs;
        double quality;
        FilteredPose? predicted;
        RigidTransform gantryFromCamera;
        lock (_lock)
        {
            gantryFromCamera = _gantryFromCamera;
            if (!_seen) return null;
            frameTs = _lastFrameTimestamp;
            quality = _lastQuality;
            predicted = _tracker.Predict(_timeProvider.GetTimestamp() + (long)(lookAhead.TotalSeconds * _timeProvider.TimestampFrequency));
        }
        if (predicted is null) return null;
        return new HeadPoseSample(gantryFromCamera * predicted.CameraFromHead, frameTs, quality, predicted.HeadSpeedMmPerS);
    }

    /// <summary>Waits for a frame in progress, then releases the camera; <see cref="RunAsync"/> ends at its next frame.</summary>
    public void Dispose()
    {
        lock (_processing)
        {
            if (_disposed) return;
            _disposed = true;
        }
        lock (_lock)
        {
            _lastFrame?.Dispose();
            _lastFrame = null;
        }
        _tracker.Dispose();
        _frames.Dispose();
    }
}
