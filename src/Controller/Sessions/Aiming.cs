using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Surface;
using SmpRobot.Machine;
using SmpRobot.Vision;

namespace SmpRobot.Controller.Sessions;

/// <summary>An aimed dot: gantry-frame hover and depth points on the step grid, and the pose they came from.</summary>
public sealed record AimedDot(PlannedDot Dot, Vec3 HoverMm, Vec3 DepthMm, HeadPoseSample Pose);

/// <summary>An aim, or why not; <paramref name="TrackingHold"/> when a tracking gate failed (it clears when tracking settles).</summary>
public sealed record AimResult(AimedDot? Aim, string? HoldReason, bool TrackingHold);

/// <summary>What the gates made of the freshest pose, for status displays.</summary>
/// <param name="PoseAgeMs">From the frame's capture to now on the tracking clock; NaN when never seen.</param>
/// <param name="Quality">0..1; 0 when never seen.</param>
/// <param name="HeadSpeedMmPerS">NaN when never seen.</param>
/// <param name="HoldReason">Why placement would hold now; null when every gate passes.</param>
public sealed record GateReading(double PoseAgeMs, double Quality, double HeadSpeedMmPerS, string? HoldReason);

/// <summary>
/// Step 1 of the per-dot cycle: p_G = T_GH(t) · p_H with the freshest pose, quantised to the step
/// grid and checked against the envelope and the tracking gates (stale, poor, fast, lost). Returns a
/// hold reason instead of an aim whenever placement is not safe. Ages are measured on the pose
/// source's clock.
/// </summary>
public sealed class Aiming(MachineProfile profile, IHeadPoseSource headPose)
{
    private readonly StepGrid _grid = new(profile.StepsPerMm);

    // Boxed, so a reader on another thread never sees half of a new transform.
    private volatile object _surfaceCorrection = RigidTransform.Identity;

    /// <summary>The pose source the gates read.</summary>
    public IHeadPoseSource Source => headPose;

    /// <summary>
    /// C = T_HS(measured) · T_HS(plan)⁻¹: carries a plan dot from the model at the plan's nominal placement onto the
    /// measured scalp (the surface registration of the head position being placed), so its skin height, and so its
    /// depth, are the measured skin's. Identity (the default) when nothing was measured. Set by the runner as it
    /// enters a head position, before any dot of it is aimed.
    /// </summary>
    public RigidTransform SurfaceCorrection
    {
        get => (RigidTransform)_surfaceCorrection;
        set => _surfaceCorrection = value;
    }

    // Read by the tracking thread's aims too: volatile; null when the head position is not placed on a height map.
    private volatile HeightMap? _heightMap;

    /// <summary>
    /// For a plan without a head model: the probed height map of the head position being placed (smp surface probe),
    /// which gives each dot's skin height in H (interpolated between its nodes); null (the default) to use the plan's own
    /// heights. Set by the runner as it enters a head position.
    /// </summary>
    public HeightMap? HeightMap
    {
        get => _heightMap;
        set => _heightMap = value;
    }

    /// <summary>The dot's skin point in H on the measured scalp; null when it lies outside the probed height map.</summary>
    private Vec3? SkinH(PlannedDot dot)
    {
        if (HeightMap is { } map) return map.Covers(dot.XMm, dot.YMm) ? new Vec3(dot.XMm, dot.YMm, map.ZAt(dot.XMm, dot.YMm)) : null;
        return SurfaceCorrection.Apply(new Vec3(dot.XMm, dot.YMm, dot.ZMm));
    }

    /// <summary>
    /// How far past the profile's maxNeedleTiltDeg a dot's tilt may be at run time: plans are checked at the limit on the
    /// head as designed, and the measured head differs by the registration's small rotation. Beyond it the run holds.
    /// </summary>
    public const double TiltSlackDeg = 0.5;

    /// <summary>The skin normal of each dot (unit, frame H, the plan's), or null for a dot without one. Set by the runner with the plan.</summary>
    public Func<string, Vec3?> Normals { get; set; } = _ => null;

    /// <summary>
    /// The needle's way to <paramref name="dot"/>'s depth point along its skin normal n (the pigment goes there: under
    /// the design's dot, <c>depth</c> below the skin along n), with a gantry that plunges along Z: the entry point is the
    /// skin straight above the depth point, beside the dot by depth·tan θ, and the plunge from it is depth / cos θ long,
    /// so the tip ends exactly at the depth point and the depth along the normal is the design's. Returns the depth
    /// point's offset from the skin point (gantry frame), the plunge and θ; straight down by the plan's depth and 0°
    /// for a dot without a normal.
    /// </summary>
    private (Vec3 DepthOffset, double PlungeMm, double TiltDeg) Plunge(PlannedDot dot, RigidTransform gantryFromHead)
    {
        // The plan's normal; for a plan without normals placed on a height map, the measured skin's.
        var planNormal = Normals(dot.DotId);
        if (planNormal is null && HeightMap is { } map && map.Covers(dot.XMm, dot.YMm)) planNormal = map.NormalAt(dot.XMm, dot.YMm);
        if (planNormal is not { } normalH) return (new Vec3(0, 0, -dot.DepthMm), dot.DepthMm, 0);
        var rotation = gantryFromHead * SurfaceCorrection;
        var normalG = (rotation.Apply(normalH) - rotation.Apply(Vec3.Zero)).Normalized();
        var cos = Math.Clamp(normalG.Z, -1, 1);
        return (normalG * -dot.DepthMm, cos > 0 ? dot.DepthMm / cos : double.PositiveInfinity, Math.Acos(cos) * 180 / Math.PI);
    }

    /// <summary>Hover and depth points of a dot, or why it cannot be placed from here (tilt beyond the profile's limit, outside the envelope).</summary>
    private (Vec3 Hover, Vec3 Depth, string? Refusal) Points(PlannedDot dot, RigidTransform gantryFromHead)
    {
        if (SkinH(dot) is not { } skinH) return (default, default, $"dot {dot.DotId} lies outside the probed height map of its head position: probe it again over all its dots");
        var skin = gantryFromHead.Apply(skinH);
        var (offset, plunge, tiltDeg) = Plunge(dot, gantryFromHead);
        if (tiltDeg > profile.MaxNeedleTiltDeg + TiltSlackDeg)
        {
            return (default, default, FormattableString.Invariant($"dot {dot.DotId}: the needle would meet the skin {tiltDeg:0.0}° off its normal (limit {profile.MaxNeedleTiltDeg:0.#}°, {TiltSlackDeg:0.#}° more allowed for the measured head): turn the head as its head position says"));
        }
        if (plunge > profile.Needle.MaxDepthMm)
        {
            // The needle's own limit holds for the plunge along Z too, not only for the depth along the normal.
            return (default, default, FormattableString.Invariant($"dot {dot.DotId}: reaching {dot.DepthMm:0.00} mm along the skin normal at {tiltDeg:0.0}° takes a {plunge:0.00} mm plunge, beyond the needle's {profile.Needle.MaxDepthMm:0.00} mm"));
        }
        var depthPoint = skin + offset;
        var entry = depthPoint with { Z = depthPoint.Z + plunge };
        var hover = _grid.Quantise(entry with { Z = entry.Z + profile.HoverHeightMm });
        var depth = _grid.Quantise(depthPoint);
        if (!profile.InEnvelope(hover) || !profile.InEnvelope(depth)) return (hover, depth, $"dot {dot.DotId} target {depth} is outside the machine envelope");
        return (hover, depth, null);
    }

    /// <summary>
    /// Aims <paramref name="dot"/> with the pose predicted <paramref name="lookAhead"/> from now (the
    /// moment the needle is expected to reach depth); exactly one of the results is non-null.
    /// </summary>
    public (AimedDot? Aim, string? HoldReason) Aim(PlannedDot dot, TimeSpan lookAhead = default)
    {
        var result = AimOrHold(dot, lookAhead);
        return (result.Aim, result.HoldReason);
    }

    /// <summary>As <see cref="Aim"/>, and says whether a hold comes from tracking (it clears by itself when tracking settles) or not (the envelope).</summary>
    public AimResult AimOrHold(PlannedDot dot, TimeSpan lookAhead = default)
    {
        ArgumentNullException.ThrowIfNull(dot);
        var pose = headPose.Latest(lookAhead);
        var hold = Gate(pose).HoldReason;
        if (hold is not null) return new AimResult(null, hold, TrackingHold: true);
        var (hover, depth, refusal) = Points(dot, pose!.GantryFromHead);
        if (refusal is not null) return new AimResult(null, refusal, TrackingHold: false);
        return new AimResult(new AimedDot(dot, hover, depth, pose), null, TrackingHold: false);
    }

    /// <summary>
    /// Aims <paramref name="dot"/> for a given head pose <paramref name="gantryFromHead"/> (no tracking gates: a
    /// program checked ahead of time, for a still head in each of a plan's head positions).
    /// </summary>
    public (AimedDot? Aim, string? HoldReason) AimAt(PlannedDot dot, RigidTransform gantryFromHead)
    {
        ArgumentNullException.ThrowIfNull(dot);
        var (hover, depth, refusal) = Points(dot, gantryFromHead);
        if (refusal is not null) return (null, refusal);
        return (new AimedDot(dot, hover, depth, new HeadPoseSample(gantryFromHead, headPose.Clock.GetTimestamp(), 1.0, 0.0)), null);
    }

    /// <summary>The tracking gates on the freshest pose (no look-ahead).</summary>
    public GateReading Read() => Gate(headPose.Latest());

    /// <summary>The tracking gates on <paramref name="pose"/>: stale, poor quality (lost), too fast, never seen.</summary>
    public GateReading Gate(HeadPoseSample? pose)
    {
        if (pose is null) return new GateReading(double.NaN, 0, double.NaN, "head not tracked yet (board not seen)");
        var ageMs = headPose.Clock.GetElapsedTime(pose.CapturedTimestamp).TotalMilliseconds;
        string? hold = null;
        if (ageMs > profile.PoseMaxAgeMs)
        {
            hold = FormattableString.Invariant($"head pose is stale ({ageMs:0} ms old, limit {profile.PoseMaxAgeMs:0} ms)");
        }
        else if (pose.Quality < profile.MinPoseQuality)
        {
            hold = pose.Quality <= 0
                ? "board lost or tracking not settled (quality 0)"
                : FormattableString.Invariant($"tracking quality {pose.Quality:0.00} below {profile.MinPoseQuality:0.00}");
        }
        else if (pose.HeadSpeedMmPerS > profile.MaxHeadSpeedMmPerS)
        {
            hold = FormattableString.Invariant($"head moving at {pose.HeadSpeedMmPerS:0.0} mm/s (limit {profile.MaxHeadSpeedMmPerS:0.0} mm/s)");
        }
        return new GateReading(ageMs, pose.Quality, pose.HeadSpeedMmPerS, hold);
    }
}
