using SmpRobot.Controller.Gantry;

namespace SmpRobot.Controller.Safety;

/// <summary>
/// The one check of whether the machine may be used now, with one refusal text per reason, each
/// naming what fixes it: the e-stop latch, the link, the firmware settings, the lease (who else holds
/// the machine) and homing. Sessions, check mode, calibrations, jogs and homing all ask here.
/// </summary>
public sealed class MachineReadiness(GantryConnection gantry, SafetySupervisor safety)
{
    /// <summary>The latch refusal.</summary>
    public const string LatchedRefusal = "the emergency stop is latched: check the patient and the machine, then reset it with smp estop --reset";

    /// <summary>The machine's lease (see <see cref="MachineLease"/>).</summary>
    public MachineLease Lease => gantry.Lease;

    /// <summary>The link refusal.</summary>
    public string NotConnectedRefusal => $"the gantry ({gantry.Description}) is not connected: check the cable and run smp machine connect";

    /// <summary>
    /// Every reason the machine may not be used now, first reason first. The lease is looked at too
    /// (a holder other than the caller refuses); homing only when <paramref name="needsHoming"/>, and the
    /// firmware settings against the profile only when <paramref name="needsMatchingSettings"/> (sessions:
    /// a dot's depth depends on them; a manual move is watched by its operator).
    /// </summary>
    public IReadOnlyList<string> Refusals(bool needsHoming, bool needsMatchingSettings = false)
    {
        var refusals = new List<string>();
        if (safety.IsLatched) refusals.Add(LatchedRefusal);
        if (!gantry.IsConnected) refusals.Add(NotConnectedRefusal);
        else if (needsMatchingSettings && gantry.SettingsMismatch is { } settings) refusals.Add(settings);
        if (gantry.Lease.Holder is { } holder) refusals.Add(holder.BusyText);
        if (needsHoming && gantry.IsConnected && !gantry.IsHomed) refusals.Add(GantryConnection.NotHomedRefusal);
        return refusals;
    }

    /// <summary>
    /// Checks the machine, then takes its lease for <paramref name="use"/>; throws
    /// <see cref="RefusedException"/> (FailedPrecondition) "cannot <paramref name="action"/>: …" with the first reason.
    /// The lease is taken last and decided by one compare-and-set, so of two callers at the same moment one wins.
    /// </summary>
    public IDisposable Take(MachineUse use, string what, string action, bool needsHoming = true, bool needsMatchingSettings = false)
    {
        if (Refusals(needsHoming, needsMatchingSettings) is [var refusal, ..]) throw new RefusedException(RefusalKind.FailedPrecondition, $"cannot {action}: {refusal}");
        return gantry.Lease.Acquire(use, what, action);
    }
}
