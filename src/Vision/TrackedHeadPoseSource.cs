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
/// <param name="FrameSequence">The last frame's place in its source (0, 1, ...; a folder's images in name order).</param>
/// <param name="RawCameraFromHead">T_CH measured in the last frame before filtering; null without a pose.</param>
/// <param name="Intrinsics">Where the intrinsics in use come from ("synthetic camera", "file …", "calibration …"); empty when there are none.</param>
public sealed record TrackingSnapshot(string Camera, long FrameTimestamp, bool BoardFound, int MarkersSeen, int CornersSeen, double ReprojectionErrorPx, double Quality, double HeadSpeedMmPerS, long FramesProcessed, long FramesLost, int Jerks,
    long FrameSequence = 0, RigidTransform? RawCameraFromHead = null, string Intrinsics = "");

/// <summary>
/// <see cref="IHeadPoseSource"/> from a camera: reads frames, tracks the board, and reports
/// T_GH = T_GC · T_CH(predicted to now) with the capture timestamp of the frame it came from, the
/// filter's head speed, and the quality of the last frame (0 while the board is lost or the filter
/// has not settled). <see cref="Latest"/> may be called from any thread.
/// </summary>
public sealed class TrackedHeadPoseSource : IHeadPoseSource, IDisposable
{
    private readonly IFrameSource _frames;
    private readonly MarkerBoard _board;
    private readonly HeadTrackerOptions? _options;
    // Null until the camera has intrinsics: frames are read (the camera stays held, previews work) but nothing is tracked.
    private HeadTracker? _tracker;
    private string _intrinsicsOrigin = "";
    private bool _sizeMismatch; // the intrinsics in use are for another image size than the frames
    private static readonly BoardDetection NothingDetected = new([], [], [], []);
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
    /// Tracks <paramref name="board"/> in <paramref name="frames"/>. Intrinsics default to the source's own
    /// (synthetic scenes); a real camera has none until they are given here or with <see cref="SetIntrinsics"/>
    /// (a calibration of this very camera, or a calibration file): until then frames are read but no pose is
    /// published (<see cref="HasIntrinsics"/> false). Takes ownership of <paramref name="frames"/> (disposed with this).
    /// </summary>
    public TrackedHeadPoseSource(IFrameSource frames, MarkerBoard board, RigidTransform gantryFromCamera, TimeProvider timeProvider, CameraIntrinsics? intrinsics = null, HeadTrackerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(frames);
        _frames = frames;
        _board = board;
        _options = options;
        _gantryFromCamera = gantryFromCamera;
        _timeProvider = timeProvider;
        var k = intrinsics ?? frames.Intrinsics;
        if (k is not null)
        {
            _tracker = new HeadTracker(board, k, timeProvider, options);
            _intrinsicsOrigin = intrinsics is null ? "the source's own (" + frames.Description + ")" : "given";
        }
    }

    /// <summary>True once the tracker has intrinsics; without them it publishes no pose and sessions that need tracking are refused.</summary>
    public bool HasIntrinsics { get { lock (_lock) return _tracker is not null && !_sizeMismatch; } }

    /// <summary>Where the intrinsics in use come from; empty when there are none.</summary>
    public string IntrinsicsOrigin { get { lock (_lock) return _intrinsicsOrigin; } }

    /// <summary>The intrinsics in use, or null.</summary>
    public CameraIntrinsics? Intrinsics { get { lock (_lock) return _tracker?.Intrinsics; } }

    /// <summary>
    /// Uses <paramref name="intrinsics"/> from the next frame on (a new calibration of this camera, or a file);
    /// tracking starts over (the filter forgets the poses measured with the old ones). <paramref name="origin"/>
    /// says where they come from, for status displays and records. Thread-safe.
    /// </summary>
    /// <exception cref="ArgumentException">The intrinsics are for another image size than the camera's frames.</exception>
    public void SetIntrinsics(CameraIntrinsics intrinsics, string origin)
    {
        ArgumentNullException.ThrowIfNull(intrinsics);
        HeadTracker? old;
        lock (_processing)
        {
            // Dispose marks itself under this lock before it frees the last frame: a frame read here is never freed meanwhile.
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_lastFrame is { } last && (last.Image.Width != intrinsics.WidthPx || last.Image.Height != intrinsics.HeightPx))
            {
                throw new ArgumentException($"intrinsics for {intrinsics.WidthPx}x{intrinsics.HeightPx} px, but {_frames.Description} delivers {last.Image.Width}x{last.Image.Height} px frames");
            }
            var tracker = new HeadTracker(_board, intrinsics, _timeProvider, _options);
            lock (_lock)
            {
                old = _tracker;
                _tracker = tracker;
                _intrinsicsOrigin = origin;
                _sizeMismatch = false;
                _seen = false;
            }
        }
        old?.Dispose();
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
        HeadTracker? tracker;
        lock (_lock) tracker = _tracker;
        // Intrinsics belong to one image size: frames of another size are not measured with them.
        if (tracker is not null && (tracker.Intrinsics.WidthPx != frame.Image.Width || tracker.Intrinsics.HeightPx != frame.Image.Height))
        {
            lock (_lock)
            {
                _sizeMismatch = true;
                if (!_intrinsicsOrigin.StartsWith("NOT USED", StringComparison.Ordinal))
                {
                    _intrinsicsOrigin = $"NOT USED: {_intrinsicsOrigin} is for {tracker.Intrinsics.WidthPx}x{tracker.Intrinsics.HeightPx} px, the frames are {frame.Image.Width}x{frame.Image.Height} px";
                }
            }
            tracker = null;
        }
        // Without intrinsics nothing can be measured: the frame is kept for previews, and no pose is published.
        (TrackedPose? raw, BoardDetection detection) = tracker is null ? (null, NothingDetected) : tracker.Detect(frame.Image, frame.CapturedTimestamp);
        TrackingResult result;
        Frame? previous;
        lock (_lock)
        {
            result = tracker is null ? new TrackingResult(null, null, detection) : tracker.Fold(raw, detection, frame.CapturedTimestamp);
            _lastFrameTimestamp = frame.CapturedTimestamp;
            _lastQuality = tracker is { Trusted: true } ? result.Raw!.Quality : 0.0;
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
                _framesProcessed, _framesLost, _tracker?.JerkCount ?? 0, _lastFrame?.Sequence ?? 0, raw?.CameraFromHead, _intrinsicsOrigin);
        }
    }

    /// <summary>
    /// A copy of the last frame the camera delivered and its sequence number, or null before the first: lets a
    /// calibration use the camera the tracker holds (a device can be opened once).
    /// </summary>
    public (Mat Image, long Sequence)? CopyLastFrame()
    {
        lock (_lock)
        {
            return _lastFrame is null ? null : (_lastFrame.Image.Clone(), _lastFrame.Sequence);
        }
    }

    /// <summary>
    /// A copy of the last frame with the board pose measured in it (T_CH, unfiltered) and the intrinsics it was measured
    /// with and its capture timestamp (TimeProvider ticks), taken together under the tracker's lock; null before the first frame in which the board was found.
    /// </summary>
    public (Mat Image, RigidTransform CameraFromHead, CameraIntrinsics Intrinsics, long CapturedTimestamp)? CopyLastFrameWithPose()
    {
        lock (_lock)
        {
            if (_lastFrame is null || _lastResult?.Raw is not { } raw || _tracker is null) return null;
            return (_lastFrame.Image.Clone(), raw.CameraFromHead, _tracker.Intrinsics, _lastFrame.CapturedTimestamp);
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
            using var drawn = TrackingPreview.Draw(_lastFrame.Image, _lastResult.Detection, _lastResult.Raw, _tracker?.Intrinsics);
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
            if (!_seen || _tracker is null) return null;
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
        _tracker?.Dispose();
        _frames.Dispose();
    }
}
