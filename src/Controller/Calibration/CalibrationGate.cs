using System.Globalization;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Storage;
using SmpRobot.Machine;
using SmpRobot.Vision;

namespace SmpRobot.Controller.Calibration;

/// <summary>An operator's explicit decision to start a tracked session without a valid gantry calibration.</summary>
/// <param name="Operator">Who decided (recorded).</param>
/// <param name="Reason">Why (required, recorded).</param>
public sealed record CalibrationOverrideRequest(string Operator, string Reason);

/// <summary>What a session starts with: the calibration, or the override that replaced it (both null for a fixed head).</summary>
public sealed record SessionCalibration(string? CalibrationId, CalibrationOverrideRequest? Override);

/// <summary>
/// The calibration side of starting a session (who moves the machine is the lease's business: <see cref="Gantry.MachineLease"/>).
/// A tracked camera needs a valid gantry calibration for its camera and the profile, no older than
/// tracking.calibrationMaxAgeHours, unless the operator overrides explicitly; a fixed head needs none.
/// Thread-safe.
/// </summary>
public sealed class CalibrationGate(LedgerStore ledger, MachineProfile profile, IHeadPoseSource headPose, TimeProvider timeProvider, string cameraId)
{
    /// <summary>Identity of the controller's camera (see <see cref="CameraIdentity"/>); "none" for a fixed head.</summary>
    public string CameraId => cameraId;

    /// <summary>True when sessions need a gantry calibration (the head is tracked by a camera).</summary>
    public bool Required => headPose.IsTracking;

    /// <summary>The newest valid gantry calibration of this camera and profile, or null.</summary>
    public CalibrationRecord? Current() => ledger.LatestValidCalibration(CalibrationKind.Gantry, cameraId, profile.Name);

    /// <summary>
    /// Decides what a session starts with. Fixed head: nothing. Tracked: the current calibration when
    /// it is young enough; otherwise the override when one is given (a reason is required); otherwise
    /// throws <see cref="RefusedException"/> (FailedPrecondition) saying which command to run.
    /// </summary>
    public SessionCalibration ForSessionStart(CalibrationOverrideRequest? calibrationOverride)
    {
        if (!Required) return new SessionCalibration(null, null);
        var current = Current();
        string? problem = null;
        if (current is null)
        {
            problem = $"there is no valid camera-to-gantry calibration for camera {cameraId} on profile {profile.Name}";
        }
        else
        {
            var ageHours = (timeProvider.GetUtcNow() - current.CreatedAt).TotalHours;
            if (ageHours > profile.Tracking.CalibrationMaxAgeHours)
            {
                problem = string.Create(CultureInfo.InvariantCulture,
                    $"the camera-to-gantry calibration {current.Id} for camera {cameraId} is {ageHours:0.#} h old, more than the profile's limit of {profile.Tracking.CalibrationMaxAgeHours:0.#} h");
            }
        }
        if (problem is null) return new SessionCalibration(current!.Id, null);
        if (calibrationOverride is null)
        {
            throw new RefusedException(RefusalKind.FailedPrecondition,
                problem + ": run `smp calibrate gantry` (then `smp calibrate check` each treatment day), or start with an explicit override and a reason");
        }
        if (string.IsNullOrWhiteSpace(calibrationOverride.Reason))
        {
            throw new RefusedException(RefusalKind.InvalidArgument, "a calibration override needs a reason (it is recorded with the session)");
        }
        return new SessionCalibration(null, calibrationOverride with { Operator = string.IsNullOrWhiteSpace(calibrationOverride.Operator) ? "unknown operator" : calibrationOverride.Operator.Trim(), Reason = calibrationOverride.Reason.Trim() });
    }
}
