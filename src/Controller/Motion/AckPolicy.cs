namespace SmpRobot.Controller.Motion;

/// <summary>
/// The one rule for how long the firmware may take to acknowledge a line: it owes the ok once the
/// motion queued ahead of it has run, so the bound is twice that motion's nominal machine time (in
/// wall time at the simulator's time scale) plus a fixed margin for status round trips and host
/// scheduling. A lost ok then faults what waits for it instead of hanging it while status reports
/// keep saying the link is alive.
/// </summary>
public static class AckPolicy
{
    /// <summary>An ack may take this many times its queued motion's nominal duration…</summary>
    public const double TimeFactor = 2;

    /// <summary>…plus this, seconds.</summary>
    public const double MarginSeconds = 5;

    /// <summary>The wall-time bound for an ok with <paramref name="queuedMachineSeconds"/> of motion ahead of it.</summary>
    /// <param name="queuedMachineSeconds">Nominal machine time of the motion queued ahead of the line (0 for none), s.</param>
    /// <param name="timeScale">Machine seconds per wall second (1 on real hardware; the simulator's --time-scale).</param>
    public static TimeSpan Bound(double queuedMachineSeconds, double timeScale) =>
        TimeSpan.FromSeconds((Math.Max(0, queuedMachineSeconds) / timeScale * TimeFactor) + MarginSeconds);
}
