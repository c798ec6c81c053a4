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

    /// <summary>A spot of the after-frame within this of one of the before-frame was there before (stubble, an older dot), mm. Default 0.2.</summary>
    public double SameSpotMm { get; init; } = 0.2;

    /// <summary>How long to wait for a frame captured after the dot was placed. Default 2 s.</summary>
    public TimeSpan FrameWait { get; init; } = TimeSpan.FromSeconds(2);
}

/// <summary>What the camera saw where a dot was placed.</summary>
/// <param name="Result">On target, off target or not seen.</param>
/// <param name="OffsetH">The new spot minus the target, in the skin's tangent plane, frame H; null when not seen.</param>
public sealed record DotCheckMeasurement(DotCheckResult Result, Vec3? OffsetH)
{
    /// <summary>Distance from the target, mm; null when not seen.</summary>
    public double? OffsetMm => OffsetH?.Length;
}

/// <summary>
/// The camera's check of every dot of a treatment session: a frame taken just before the plunge and one captured after
/// the dot was confirmed, the dark spots of both found (<see cref="HealedDotDetector"/>) and met with the skin's tangent
/// plane at the target; the new spot is the one the first frame did not have (stubble and older dots were there), and
/// its distance from the target is recorded with the dot (<see cref="LedgerStore.RecordDotCheck"/>). A dot not seen, or
/// seen farther than the tolerance, is flagged for the operator (audited; never redone automatically). Runs beside the
/// dot cycle on its own task: a check never delays a dot. Only a camera that says where it sees skin (<see cref="IScalpView"/>) checks.
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
    private long _checked;

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

    /// <summary>Dots checked so far (for tests and status).</summary>
    public long Checked => Interlocked.Read(ref _checked);

    /// <summary>A frame of the skin before a plunge (null when the camera cannot check); give it back to <see cref="Placed"/>.</summary>
    public FrameBefore? TakeBefore()
    {
        if (_headPose is not TrackedHeadPoseSource { Frames: IScalpView view } tracked) return null;
        try
        {
            return tracked.CopyLastFrameWithPose() is { } frame ? new FrameBefore(frame.Image, frame.CameraFromHead, frame.Intrinsics, frame.CapturedTimestamp, view.DotSearchRegion) : null;
        }
#pragma warning disable CA1031 // the check is a supplement: a frame that cannot be copied leaves this dot unchecked, never fails it
        catch (Exception e)
#pragma warning restore CA1031
        {
            Log.CheckFailed(_log, "(before frame)", e.Message);
            return null;
        }
    }

    /// <summary>
    /// Queues the check of a dot just confirmed Placed: its target skin point and outward normal in H, the frame taken
    /// before its plunge, and the rotation that carries an offset from H into S. The queue owns <paramref name="before"/>.
    /// </summary>
    public void Placed(string sessionId, string dotId, Vec3 targetH, Vec3 normalH, FrameBefore before, RigidTransform scalpFromHead, Vec3 plannedS)
    {
        ArgumentNullException.ThrowIfNull(before);
        var placedAt = _time.GetTimestamp();
        if (!_queue.Writer.TryWrite(new Request(sessionId, dotId, targetH, normalH, before, scalpFromHead, plannedS, placedAt))) before.Dispose();
    }

    /// <summary>
    /// What the camera saw: the spots of <paramref name="after"/> that <paramref name="beforeSpots"/> did not have, the
    /// nearest to the target within the search radius. Spots are points of the tangent plane at the target, frame H.
    /// </summary>
    public static DotCheckMeasurement Measure(IReadOnlyList<Vec3> beforeSpots, IReadOnlyList<Vec3> after, Vec3 targetH, DotCheckOptions options)
    {
        ArgumentNullException.ThrowIfNull(beforeSpots);
        ArgumentNullException.ThrowIfNull(after);
        ArgumentNullException.ThrowIfNull(options);
        Vec3? best = null;
        foreach (var spot in after)
        {
            var d = spot.DistanceTo(targetH);
            if (d > options.SearchRadiusMm) continue;
            if (beforeSpots.Any(b => b.DistanceTo(spot) <= options.SameSpotMm)) continue;
            if (best is null || d < best.Value.DistanceTo(targetH)) best = spot;
        }
        if (best is not { } seen) return new DotCheckMeasurement(DotCheckResult.NotSeen, null);
        var offset = seen - targetH;
        return new DotCheckMeasurement(offset.Length <= options.ToleranceMm ? DotCheckResult.OnTarget : DotCheckResult.OffTarget, offset);
    }

    /// <summary>The spots of a frame met with the plane through <paramref name="pointH"/> normal to <paramref name="normalH"/>, within <paramref name="radiusMm"/> of the point.</summary>
    public static IReadOnlyList<Vec3> SpotsNear(Mat image, RigidTransform cameraFromHead, CameraIntrinsics intrinsics, DotSearchRegion region, Vec3 pointH, Vec3 normalH, double radiusMm)
    {
        var spots = new List<Vec3>();
        foreach (var d in new HealedDotDetector(intrinsics).Detect(image, cameraFromHead, region))
        {
            var denominator = Vec3.Dot(d.DirectionH, normalH);
            if (Math.Abs(denominator) < 1e-6) continue;
            var t = Vec3.Dot(pointH - d.OriginH, normalH) / denominator;
            var hit = d.OriginH + (d.DirectionH * t);
            if (hit.DistanceTo(pointH) <= radiusMm) spots.Add(hit);
        }
        return spots;
    }

    private async Task RunAsync()
    {
        await foreach (var request in _queue.Reader.ReadAllAsync())
        {
            using (request.FrameBefore)
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
        }
    }

    private async Task CheckAsync(Request r)
    {
        if (_headPose is not TrackedHeadPoseSource tracked) return;
        // Where the camera cannot see skin (under the board's sticker, beyond the view), the dot stays unchecked: not flagged.
        var cameraH = Rotations.Inverse(r.FrameBefore.CameraFromHead).Translation;
        if (!r.FrameBefore.Region.Contains(cameraH, r.TargetH)) return;
        // A frame captured after the dot was confirmed: the new dot is in it.
        var deadline = _time.GetTimestamp() + (long)(_options.FrameWait.TotalSeconds * _time.TimestampFrequency);
        (Mat Image, RigidTransform CameraFromHead, CameraIntrinsics Intrinsics, long CapturedTimestamp)? after = null;
        while (_time.GetTimestamp() < deadline)
        {
            // Copied only once a newer frame exists (a copy takes the tracker's lock).
            if (tracked.Snapshot() is not { } seen || seen.FrameTimestamp <= r.PlacedAt)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(15), _time);
                continue;
            }
            var frame = tracked.CopyLastFrameWithPose();
            if (frame is { } f && f.CapturedTimestamp > r.PlacedAt)
            {
                after = f;
                break;
            }
            frame?.Image.Dispose();
            await Task.Delay(TimeSpan.FromMilliseconds(15), _time);
        }
        if (after is not { } a)
        {
            Log.NoFrame(_log, r.DotId);
            return;
        }
        // A frame taken long after the dot may already hold the next one (dots ~1 mm apart): no measurement then.
        if (a.CapturedTimestamp - r.PlacedAt > (long)(MaxAfterDelay.TotalSeconds * _time.TimestampFrequency))
        {
            a.Image.Dispose();
            Log.NoFrame(_log, r.DotId);
            return;
        }
        DotCheckMeasurement m;
        using (a.Image)
        {
            var radius = _options.SearchRadiusMm + _options.SameSpotMm;
            var before = SpotsNear(r.FrameBefore.Image, r.FrameBefore.CameraFromHead, r.FrameBefore.Intrinsics, r.FrameBefore.Region, r.TargetH, r.NormalH, radius);
            var now = SpotsNear(a.Image, a.CameraFromHead, a.Intrinsics, r.FrameBefore.Region, r.TargetH, r.NormalH, radius);
            m = Measure(before, now, r.TargetH, _options);
        }
        Vec3? measuredS = m.OffsetH is { } offset ? r.PlannedS + (r.ScalpFromHead.Apply(offset) - r.ScalpFromHead.Apply(Vec3.Zero)) : null;
        _ledger.RecordDotCheck(r.SessionId, r.DotId, m.Result, measuredS, m.OffsetMm);
        Interlocked.Increment(ref _checked);
        if (m.Result != DotCheckResult.OnTarget)
        {
            _ledger.Audit(r.SessionId, "dot-flagged", m.Result == DotCheckResult.NotSeen
                ? $"dot {r.DotId}: the camera did not see it where it was placed; inspect it (not redone automatically)"
                : FormattableString.Invariant($"dot {r.DotId}: the camera saw it {m.OffsetMm:0.00} mm from its target (tolerance {_options.ToleranceMm:0.00} mm); inspect it (not redone automatically)"));
        }
    }

    /// <summary>The latest an after-frame may be captured after its dot, before the next dot can be in it.</summary>
    private static readonly TimeSpan MaxAfterDelay = TimeSpan.FromMilliseconds(300);

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
        while (_queue.Reader.TryRead(out var left)) left.FrameBefore.Dispose();
    }

    private sealed record Request(string SessionId, string DotId, Vec3 TargetH, Vec3 NormalH, FrameBefore FrameBefore, RigidTransform ScalpFromHead, Vec3 PlannedS, long PlacedAt);

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "The camera's check of dot {DotId} failed: {Reason}")]
        public static partial void CheckFailed(ILogger log, string dotId, string reason);

        [LoggerMessage(Level = LogLevel.Warning, Message = "The camera's check of dot {DotId}: no frame after the dot came in time; it stays unchecked")]
        public static partial void NoFrame(ILogger log, string dotId);
    }
}
