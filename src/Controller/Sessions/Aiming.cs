using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Storage;
using SmpRobot.Vision;

namespace SmpRobot.Controller.Sessions;

/// <summary>An aimed dot: gantry-frame hover and depth points on the step grid, and the pose they came from.</summary>
public sealed record AimedDot(PlannedDot Dot, Vec3 HoverMm, Vec3 DepthMm, HeadPoseSample Pose);

/// <summary>
/// Step 1 of the per-dot cycle: p_G = T_GH(t) · p_H with the freshest pose, quantised to the step
/// grid and checked against the envelope and the tracking gates. Returns a hold reason instead of
/// an aim whenever placement is not safe.
/// </summary>
public sealed class Aiming(MachineProfile profile, IHeadPoseSource headPose, TimeProvider timeProvider)
{
    private readonly StepGrid _grid = new(profile.StepsPerMm);

    /// <summary>Aims <paramref name="dot"/>; exactly one of the results is non-null.</summary>
    public (AimedDot? Aim, string? HoldReason) Aim(PlannedDot dot)
    {
        var pose = headPose.Latest();
        if (pose is null) return (null, "head not tracked yet");
        var ageMs = timeProvider.GetElapsedTime(pose.CapturedTimestamp).TotalMilliseconds;
        if (ageMs > profile.PoseMaxAgeMs)
        {
            return (null, FormattableString.Invariant($"head pose is stale ({ageMs:0} ms old, limit {profile.PoseMaxAgeMs:0} ms)"));
        }
        if (pose.Quality < profile.MinPoseQuality)
        {
            return (null, FormattableString.Invariant($"tracking quality {pose.Quality:0.00} below {profile.MinPoseQuality:0.00}"));
        }
        if (pose.HeadSpeedMmPerS > profile.MaxHeadSpeedMmPerS)
        {
            return (null, FormattableString.Invariant($"head moving at {pose.HeadSpeedMmPerS:0.0} mm/s (limit {profile.MaxHeadSpeedMmPerS:0.0} mm/s)"));
        }
        var skin = pose.GantryFromHead.Apply(new Vec3(dot.XMm, dot.YMm, dot.ZMm));
        var hover = _grid.Quantise(skin with { Z = skin.Z + profile.HoverHeightMm });
        var depth = _grid.Quantise(skin with { Z = skin.Z - dot.DepthMm });
        if (!profile.InEnvelope(hover) || !profile.InEnvelope(depth))
        {
            return (null, $"dot {dot.DotId} target {depth} is outside the machine envelope");
        }
        return (new AimedDot(dot, hover, depth, pose), null);
    }
}
