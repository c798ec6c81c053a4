using System.Globalization;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Storage;
using SmpRobot.Controller.Surface;
using SmpRobot.Geometry;
using SmpRobot.Machine;
using SmpRobot.Treatment.Mesh;

namespace SmpRobot.Controller.Sessions;

/// <summary>
/// A run's re-check of the surface registration it places on (profile <c>surfaceRecheckEveryDots</c>): once that
/// many dots were placed on it since it was made or last checked (counted in the ledger, so across pauses and
/// resumes), one probe at the next dot's skin, needle drive off. A contact farther from the registered surface than
/// <c>surfaceRecheckToleranceMm</c>, or a probe that says the skin or the probe is not as registered (a cut wire
/// touches nothing, a stuck one reads touching, skin touched on the way down), withdraws the registration and holds
/// the run with the reason: the head position is probed anew before the run goes on. A probe refused for another
/// reason (tracking, the head moving) holds without withdrawing. Every check is stored
/// (<see cref="LedgerStore.SaveSurfaceCheck"/>).
/// </summary>
public sealed class SurfaceRecheck
{
    private readonly SurfaceRecheckContext _context;
    private int _placedSinceCheck;

    private SurfaceRecheck(SurfaceRecheckContext context) => _context = context;

    /// <summary>
    /// The re-check of head position <paramref name="patch"/> placed on <paramref name="registration"/>, or null when
    /// the profile turns it off or no probing is wired.
    /// </summary>
    public static SurfaceRecheck? For(SurfaceProbing? probing, MachineProfile profile, LedgerStore ledger, SurfaceRegistrationRecord registration, RigidTransform registered, int patch)
    {
        ArgumentNullException.ThrowIfNull(profile);
        ArgumentNullException.ThrowIfNull(ledger);
        ArgumentNullException.ThrowIfNull(registration);
        if (probing is null || profile.SurfaceRecheckEveryDots == 0) return null;
        if (ledger.LoadHeadModel(registration.ModelSha256) is not { } file) return null;
        var model = MeshReader.Read(file.Bytes, file.FileName);
        var lastChecked = ledger.ListSurfaceChecks(registration.SessionId ?? "").Where(c => c.RegistrationId == registration.Id).Select(c => c.At).DefaultIfEmpty(registration.CreatedAt).Max();
        return new SurfaceRecheck(new SurfaceRecheckContext(probing, profile, ledger, registration, registered, model, patch))
        {
            _placedSinceCheck = registration.SessionId is { } session ? ledger.CountPlacedSince(session, lastChecked) : 0,
        };
    }

    /// <summary>Counts a placed dot.</summary>
    public void CountPlaced() => _placedSinceCheck++;

    /// <summary>True when a check is due before the next dot.</summary>
    public bool Due => _placedSinceCheck >= _context.Profile.SurfaceRecheckEveryDots;

    /// <summary>
    /// Checks the skin of <paramref name="next"/> (nominal plan frame H, moved onto the registered surface by
    /// <paramref name="surfaceCorrection"/>) from <paramref name="current"/>. Returns null when the skin is where the
    /// registration puts it, else the hold's reason. The needle is back up at the probe's start either way; the caller
    /// sets the firmware up for placing again.
    /// </summary>
    public async Task<string?> CheckAsync(string sessionId, PlannedDot next, RigidTransform surfaceCorrection, Vec3 current, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(next);
        var c = _context;
        var skinH = surfaceCorrection.Apply(new Vec3(next.XMm, next.YMm, next.ZMm));
        var again = $"probe head position {c.Patch} again (smp surface probe {sessionId}{(c.Patch > 0 ? " --patch " + c.Patch.ToString(CultureInfo.InvariantCulture) : "")}), then resume";
        SurfaceCheck check;
        try
        {
            check = await c.Probing.CheckAsync(c.Model, c.Registered, skinH, current, new SurfaceProbeOptions(), ct);
        }
        catch (SurfaceProbeRefusedException e) when (!e.SkinOrProbeInDoubt)
        {
            // Nothing learnt of the skin (tracking, a moving head, the machine): the registration stands; the next
            // run checks again before its first dot.
            c.Ledger.Audit(sessionId, "surface-check-refused", $"the surface re-check before dot {next.DotId} was refused ({e.Message}); registration {c.Registration.Id} stands");
            return $"the surface re-check before dot {next.DotId} was refused ({e.Message}); resume to check again";
        }
        catch (RefusedException e)
        {
            c.Ledger.SaveSurfaceCheck(c.Registration.Id, sessionId, next.DotId, double.NaN, false, "the re-check's " + e.Message);
            return $"the surface re-check before dot {next.DotId} failed ({e.Message}): registration {c.Registration.Id} is withdrawn; {again}";
        }
        var tolerance = c.Profile.SurfaceRecheckToleranceMm;
        var ok = Math.Abs(check.DeviationMm) <= tolerance;
        var found = double.IsFinite(check.DeviationMm)
            ? string.Create(CultureInfo.InvariantCulture, $"the skin is {Math.Abs(check.DeviationMm):0.000} mm {(check.DeviationMm >= 0 ? "above" : "below")} the registered surface (tolerance {tolerance:0.00} mm)")
            : "no skin of the head model lies within 10 mm of the contact";
        c.Ledger.SaveSurfaceCheck(c.Registration.Id, sessionId, next.DotId, check.DeviationMm, ok, found);
        _placedSinceCheck = 0;
        return ok ? null : $"the scalp moved: at dot {next.DotId} {found}: registration {c.Registration.Id} is withdrawn; {again}";
    }

    private sealed record SurfaceRecheckContext(SurfaceProbing Probing, MachineProfile Profile, LedgerStore Ledger, SurfaceRegistrationRecord Registration, RigidTransform Registered, TriangleMesh Model, int Patch);
}
