namespace SmpRobot.Vision;

/// <summary>
/// One head pose: T_GH, the head frame H expressed in gantry frame G (T_GC · T_CH for a tracked
/// head), stamped with the TimeProvider timestamp of the camera frame it came from.
/// </summary>
/// <param name="GantryFromHead">T_GH: maps head-frame points (plan dots) to gantry coordinates.</param>
/// <param name="CapturedTimestamp">TimeProvider timestamp of the source frame.</param>
/// <param name="Quality">0 (lost) .. 1 (perfect); the gates compare it with a threshold.</param>
/// <param name="HeadSpeedMmPerS">Estimated head speed.</param>
public sealed record HeadPoseSample(RigidTransform GantryFromHead, long CapturedTimestamp, double Quality, double HeadSpeedMmPerS);

/// <summary>The seam between tracking and placement: where the head is now.</summary>
public interface IHeadPoseSource
{
    /// <summary>"fixed", "synthetic:sway", "device:0", ...</summary>
    string Description { get; }

    /// <summary>The freshest pose, or null when the head has never been seen.</summary>
    HeadPoseSample? Latest();
}

/// <summary>
/// A still head (practice pad or a fixed head rest): the pose is a constant from the machine profile,
/// always fresh and perfect. Tracking replaces it in a later issue.
/// </summary>
public sealed class FixedHeadPoseSource(RigidTransform gantryFromHead, TimeProvider timeProvider) : IHeadPoseSource
{
    public string Description => "fixed";

    public HeadPoseSample Latest() => new(gantryFromHead, timeProvider.GetTimestamp(), 1.0, 0.0);
}
