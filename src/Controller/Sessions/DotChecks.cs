using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Mat = OpenCvSharp.Mat;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Vision;

namespace SmpRobot.Controller.Sessions;

/// <summary>A frame of the skin taken before a plunge, with its pose, the camera's intrinsics, its capture time and where the camera sees skin.</summary>
public sealed record FrameBefore(Mat Image, RigidTransform CameraFromHead, CameraIntrinsics Intrinsics, long CapturedTimestamp, DotSearchRegion Region) : IDisposable
{
    public void Dispose() => Image.Dispose();
}

/// <summary>The camera's check of placed dots: how far off a dot may be seen before it is flagged, and where to look.</summary>
public sealed record DotCheckOptions
{
    /// <summary>A dot seen farther than this from its target is flagged (OffTarget), mm. Default 0.25.</summary>
    public double ToleranceMm { get; init; } = 0.25;

    /// <summary>A new spot is looked for this far around the target, mm; none there: NotSeen. Default 1.0.</summary>
    public double SearchRadiusMm { get; init; } = 1.0;

    /// <summary>How long to wait for a frame captured after the dot was placed (on the camera's clock). Default 2 s.</summary>
    public TimeSpan FrameWait { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How the new spot is found between the frames before and after the plunge.</summary>
    public NewDotOptions Detection { get; init; } = new();
}

/// <summary>What the camera saw where a dot was placed.</summary>
/// <param name="Result">On target, off target, not seen; or not checked when the frames cannot tell (<paramref name="Why"/>).</param>
/// <param name="OffsetH">The new spot minus the target, in the skin's tangent plane, frame H; null when not seen or not checked.</param>
/// <param name="Why">Why the frames cannot tell (empty otherwise).</param>
public sealed record DotCheckMeasurement(DotCheckResult Result, Vec3? OffsetH, string Why = "")
{
    /// <summary>Distance from the target, mm; null when not seen or not checked.</summary>
    public double? OffsetMm => OffsetH?.Length;
}

/// <summary>
/// The camera's check of every dot of a treatment session: a frame taken just before the plunge and one captured after
/// the dot was confirmed (before the next plunge), compared on the skin's tangent plane at the target
/// (<see cref="NewDotDetector"/>): the new dot is where the skin darkened, so stubble and older dots, there in both
/// frames, cancel out however close to it they lie. Its distance from the target is recorded with the dot
/// (<see cref="LedgerStore.RecordDotCheck"/>). A dot not seen, or seen farther than the tolerance, is flagged for the
/// operator (audited; never redone automatically). Where the frames cannot tell (the target out of the camera's view of
/// the skin or at its edge, the skin there already dark, no frame between the plunges) the dot stays unchecked: a flag
/// is raised only on what was measured. Runs beside the dot cycle on its own task: a check never delays a dot. Only a
/// camera that says where it sees skin (<see cref="IScalpView"/>) checks. Times compared with frames are read on the
/// camera's clock (<see cref="IHeadPoseSource.Clock"/>: a synthetic camera on a simulator faster than real time runs on
/// the simulated clock).
/// </summary>
public sealed partial class DotChecks : IAsyncDisposable
{
    private readonly LedgerStore _ledger;
    private readonly IHeadPoseSource _headPose;
    private readonly TimeProvider _time;
    private readonly ILogger<DotChecks> _log;
    private readonly DotCheckOptions _options;
    // A few dots' frames at most: a check that falls behind is dropped (the dot stays unchecked), never a memory that grows.
    private readonly Channel<Request> _queue = Channel.CreateBounded<Request>(new BoundedChannelOptions(4) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Task _worker;
    private readonly Lock _gate = new();
    // The last dot placed whose check still waits for a frame after it (given the next dot's before-frame), and when the
    // last plunge ended (a before-frame older than that may lack its pigment): both on the camera's clock.
    private Request? _awaitingAfter;
    private long _lastPlungeEnded;
    private long _checked;
    // Checks queued or running, and a task that completes when there are none.
    private int _inFlight;
    private TaskCompletionSource _idle = Completed();

    public DotChecks(LedgerStore ledger, IHeadPoseSource headPose, TimeProvider time, ILogger<DotChecks> log, DotCheckOptions? options = null)
    {
        _ledger = ledger ?? throw new ArgumentNullException(nameof(ledger));
        _headPose = headPose ?? throw new ArgumentNullException(nameof(headPose));
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _log = log ?? throw new ArgumentNullException(nameof(log));
        _options = options ?? new DotCheckOptions();
        _worker = Task.Run(RunAsync);
    }

    /// <summary>True when this controller's camera can check dots.</summary>
    public bool Enabled => _headPose is TrackedHeadPoseSource { Frames: IScalpView };

    /// <summary>Dots checked so far (a result recorded: on target, off target or not seen; for tests and status).</summary>
    public long Checked => Interlocked.Read(ref _checked);

    /// <summary>Completes once no check is queued or running (at once when none is): every dot placed so far has its check recorded, or stays unchecked.</summary>
    public Task WhenIdleAsync()
    {
        lock (_gate) return _idle.Task;
    }

    private static TaskCompletionSource Completed()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        done.SetResult();
        return done;
    }

    /// <summary>The clock frame timestamps are on.</summary>
    private TimeProvider Clock => _headPose is TrackedHeadPoseSource tracked ? tracked.Clock : _time;

    /// <summary>
    /// Called just before a plunge's intent is recorded: a frame of the skin before it (null when the camera cannot
    /// check, or has no frame captured since the last plunge ended); give it back to <see cref="Placed"/>. Every frame a
    /// check of an earlier dot uses is captured before this moment, so the pigment of this plunge is in none of them;
    /// the frame taken here is the earlier dot's after-frame when it was captured after that dot was placed.
    /// </summary>
    public FrameBefore? TakeBefore()
    {
        if (_headPose is not TrackedHeadPoseSource { Frames: IScalpView view } tracked) return null;
        Request? earlier;
        long plungeEnded;
        lock (_gate)
        {
            earlier = _awaitingAfter;
            _awaitingAfter = null;
            plungeEnded = _lastPlungeEnded;
        }
        (Mat Image, RigidTransform CameraFromHead, CameraIntrinsics Intrinsics, long CapturedTimestamp)? frame;
        try
        {
            frame = tracked.CopyLastFrameWithPose();
        }
#pragma warning disable CA1031 // the check is a supplement: a frame that cannot be copied leaves this dot unchecked, never fails it
        catch (Exception e)
#pragma warning restore CA1031
        {
            Log.CheckFailed(_log, "(before frame)", e.Message);
            frame = null;
        }
        // From now on the next plunge may begin: a frame captured later may hold its pigment. The earlier dot gets this
        // frame first (when it was captured after that dot), then the fence.
        var now = tracked.Clock.GetTimestamp();
        if (frame is not { } f)
        {
            earlier?.Fence(now);
            return null;
        }
        var before = new FrameBefore(f.Image, f.CameraFromHead, f.Intrinsics, f.CapturedTimestamp, view.DotSearchRegion);
        if (earlier is not null && f.CapturedTimestamp > earlier.PlacedAt) earlier.OfferAfter(before);
        earlier?.Fence(now);
        if (f.CapturedTimestamp > plungeEnded) return before;
        // Captured before the last plunge ended: its pigment may be missing from it, and would look new after this one.
        before.Dispose();
        return null;
    }

    /// <summary>
    /// Called when a plunge is over, however it ended (placed, in doubt, stopped): a before-frame of the next dot must be
    /// captured after this.
    /// </summary>
    public void PlungeEnded()
    {
        var now = Clock.GetTimestamp();
        lock (_gate) _lastPlungeEnded = Math.Max(_lastPlungeEnded, now);
    }

    /// <summary>
    /// Queues the check of a dot just confirmed Placed: its target skin point and outward normal in H, the frame taken
    /// before its plunge, and the rotation that carries an offset from H into S. The queue owns <paramref name="before"/>.
    /// </summary>
    public void Placed(string sessionId, string dotId, Vec3 targetH, Vec3 normalH, FrameBefore before, RigidTransform scalpFromHead, Vec3 plannedS)
    {
        ArgumentNullException.ThrowIfNull(before);
        var placedAt = Clock.GetTimestamp();
        var request = new Request(sessionId, dotId, targetH, normalH, before, scalpFromHead, plannedS, placedAt);
        lock (_gate)
        {
            _lastPlungeEnded = Math.Max(_lastPlungeEnded, placedAt);
            // An earlier dot still without a fence (no before-frame was asked for since): this dot's plunge came after its before-frame.
            _awaitingAfter?.Fence(before.CapturedTimestamp);
            _awaitingAfter = null;
            if (!_queue.Writer.TryWrite(request))
            {
                request.Dispose();
                return;
            }
            if (_inFlight++ == 0) _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _awaitingAfter = request;
        }
    }

    /// <summary>
    /// What the camera saw of a dot placed at <paramref name="targetH"/> (normal <paramref name="normalH"/>, frame H)
    /// between a frame before its plunge and one after, each with its T_CH, where <paramref name="region"/> says the
    /// camera sees skin.
    /// </summary>
    public static DotCheckMeasurement Measure(Mat before, RigidTransform beforeCameraFromHead, Mat after, RigidTransform afterCameraFromHead, CameraIntrinsics intrinsics,
        DotSearchRegion region, Vec3 targetH, Vec3 normalH, DotCheckOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var found = new NewDotDetector(intrinsics, options.Detection).Find(before, beforeCameraFromHead, after, afterCameraFromHead, region, targetH, normalH, options.SearchRadiusMm);
        return Judge(found, targetH, options);
    }

    /// <summary>The check's result from what was found: on or off target by its distance, not seen, or not checked when the frames cannot tell.</summary>
    public static DotCheckMeasurement Judge(NewDotResult found, Vec3 targetH, DotCheckOptions options)
    {
        ArgumentNullException.ThrowIfNull(found);
        ArgumentNullException.ThrowIfNull(options);
        switch (found.Outcome)
        {
            case NewDotOutcome.Found when found.PointH is { } seen:
                var offset = seen - targetH;
                return new DotCheckMeasurement(offset.Length <= options.ToleranceMm ? DotCheckResult.OnTarget : DotCheckResult.OffTarget, offset);
            case NewDotOutcome.NotFound:
                return new DotCheckMeasurement(DotCheckResult.NotSeen, null);
            default:
                return new DotCheckMeasurement(DotCheckResult.NotChecked, null, string.IsNullOrEmpty(found.Reason) ? "the frames cannot tell" : found.Reason);
        }
    }

    private async Task RunAsync()
    {
        await foreach (var request in _queue.Reader.ReadAllAsync())
        {
            using (request)
            {
                try
                {
                    await CheckAsync(request);
                }
#pragma warning disable CA1031 // a check that fails must not stop the next ones: logged, the dot stays unchecked
                catch (Exception e)
#pragma warning restore CA1031
                {
                    Log.CheckFailed(_log, request.DotId, e.Message);
                }
            }
            lock (_gate)
            {
                if (--_inFlight == 0) _idle.TrySetResult();
            }
        }
    }

    private async Task CheckAsync(Request r)
    {
        if (_headPose is not TrackedHeadPoseSource tracked) return;
        // Where the camera cannot see skin (under the board's sticker, beyond the view), the dot stays unchecked: not flagged.
        var cameraH = Rotations.Inverse(r.FrameBefore.CameraFromHead).Translation;
        if (!r.FrameBefore.Region.Contains(cameraH, r.TargetH)) return;
        if (await AfterFrameAsync(r, tracked) is not { } after)
        {
            Log.NoFrame(_log, r.DotId);
            return;
        }
        DotCheckMeasurement m;
        using (after)
        {
            m = Measure(r.FrameBefore.Image, r.FrameBefore.CameraFromHead, after.Image, after.CameraFromHead, r.FrameBefore.Intrinsics, r.FrameBefore.Region, r.TargetH, r.NormalH, _options);
        }
        if (m.Result == DotCheckResult.NotChecked)
        {
            Log.CannotTell(_log, r.DotId, m.Why);
            return;
        }
        Vec3? measuredS = m.OffsetH is { } offset ? r.PlannedS + (r.ScalpFromHead.Apply(offset) - r.ScalpFromHead.Apply(Vec3.Zero)) : null;
        _ledger.RecordDotCheck(r.SessionId, r.DotId, m.Result, measuredS, m.OffsetMm);
        Interlocked.Increment(ref _checked);
        if (m.Result != DotCheckResult.OnTarget)
        {
            _ledger.Audit(r.SessionId, "dot-flagged", m.Result == DotCheckResult.NotSeen
                ? FormattableString.Invariant($"dot {r.DotId}: the camera did not see it within {_options.SearchRadiusMm:0.0} mm of where it was placed; inspect it (not redone automatically)")
                : FormattableString.Invariant($"dot {r.DotId}: the camera saw it {m.OffsetMm:0.00} mm from its target (tolerance {_options.ToleranceMm:0.00} mm); inspect it (not redone automatically)"));
        }
    }

    /// <summary>
    /// A frame captured after the dot was placed and before the next plunge's intent: the next dot's before-frame when it
    /// is one, else the camera's newest frame once one exists (the run paused or ended after this dot); null when none
    /// came within <see cref="DotCheckOptions.FrameWait"/>. The caller disposes it.
    /// </summary>
    private async Task<FrameBefore?> AfterFrameAsync(Request r, TrackedHeadPoseSource tracked)
    {
        var clock = tracked.Clock;
        var deadline = clock.GetTimestamp() + (long)(_options.FrameWait.TotalSeconds * clock.TimestampFrequency);
        while (true)
        {
            // The fence is read before the offer: a frame is offered before the fence is set, so a fenced check sees its offer.
            var fence = r.FencedAt;
            if (r.TakeOffered() is { } offered) return offered;
            if (fence is { } at && tracked.Snapshot() is { } last && last.FrameTimestamp >= at)
            {
                // The next plunge began before a frame of this dot was taken: the newest frame may hold its pigment.
                return null;
            }
            // Copied only once a newer frame exists (a copy takes the tracker's lock).
            if (tracked.Snapshot() is { } seen && seen.FrameTimestamp > r.PlacedAt && tracked.CopyLastFrameWithPose() is { } f)
            {
                // The fence is read after the copy: a frame copied before the next plunge's intent was captured before it.
                if (f.CapturedTimestamp > r.PlacedAt && (r.FencedAt is not { } fenced || f.CapturedTimestamp < fenced))
                {
                    return new FrameBefore(f.Image, f.CameraFromHead, f.Intrinsics, f.CapturedTimestamp, r.FrameBefore.Region);
                }
                f.Image.Dispose();
            }
            if (clock.GetTimestamp() >= deadline) return r.TakeOffered();
            await Task.Delay(TimeSpan.FromMilliseconds(15), clock);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        try
        {
            await _worker.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A check still waiting for a frame at shutdown: its dot stays unchecked.
        }
        while (_queue.Reader.TryRead(out var left)) left.Dispose();
        lock (_gate)
        {
            _inFlight = 0;
            _idle.TrySetResult();
        }
    }

    /// <summary>A placed dot's check: what it needs, and the after-frame the next dot's before-frame may give it.</summary>
    private sealed class Request(string sessionId, string dotId, Vec3 targetH, Vec3 normalH, FrameBefore frameBefore, RigidTransform scalpFromHead, Vec3 plannedS, long placedAt) : IDisposable
    {
        private readonly Lock _gate = new();
        private FrameBefore? _offered;
        private long? _fencedAt;
        private bool _disposed;

        public string SessionId { get; } = sessionId;
        public string DotId { get; } = dotId;
        public Vec3 TargetH { get; } = targetH;
        public Vec3 NormalH { get; } = normalH;
        public FrameBefore FrameBefore { get; } = frameBefore;
        public RigidTransform ScalpFromHead { get; } = scalpFromHead;
        public Vec3 PlannedS { get; } = plannedS;
        public long PlacedAt { get; } = placedAt;

        /// <summary>When the next plunge's intent began (camera's clock); null while none has.</summary>
        public long? FencedAt
        {
            get
            {
                lock (_gate) return _fencedAt;
            }
        }

        public void Fence(long at)
        {
            lock (_gate) _fencedAt ??= at;
        }

        /// <summary>A copy of <paramref name="frame"/> becomes this check's after-frame (the first offered is kept).</summary>
        public void OfferAfter(FrameBefore frame)
        {
            lock (_gate)
            {
                if (_disposed || _offered is not null) return;
                _offered = frame with { Image = frame.Image.Clone() };
            }
        }

        public FrameBefore? TakeOffered()
        {
            lock (_gate)
            {
                var offered = _offered;
                _offered = null;
                return offered;
            }
        }

        public void Dispose()
        {
            FrameBefore? offered;
            lock (_gate)
            {
                _disposed = true;
                offered = _offered;
                _offered = null;
            }
            offered?.Dispose();
            FrameBefore.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "The camera's check of dot {DotId} failed: {Reason}")]
        public static partial void CheckFailed(ILogger log, string dotId, string reason);

        [LoggerMessage(Level = LogLevel.Information, Message = "The camera's check of dot {DotId}: no frame between it and the next plunge came in time; it stays unchecked")]
        public static partial void NoFrame(ILogger log, string dotId);

        [LoggerMessage(Level = LogLevel.Information, Message = "The camera's check of dot {DotId}: the frames cannot tell ({Why}); it stays unchecked")]
        public static partial void CannotTell(ILogger log, string dotId, string why);
    }
}
