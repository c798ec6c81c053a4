using System.Globalization;
using Google.Protobuf;
using SmpRobot.Controller.Plans;
using SmpRobot.Controller.Storage;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Planning;
using SmpRobot.Treatment.Preview;
using SmpRobot.Treatment.Registration;
using SmpRobot.Vision;

namespace SmpRobot.Controller.Sessions;

/// <summary>What matching a session's camera view to the earlier sessions' dots gave.</summary>
/// <param name="Stored">The stored match (accepted or refused).</param>
/// <param name="HeadFromScalp">T_HS found (the initial one when refused).</param>
/// <param name="InitialHeadFromScalp">T_HS it started from (the head position's surface registration, else the plan's).</param>
/// <param name="TouchUp">For a touch-up session, what the camera found of its head position's recorded dots (null otherwise, or when refused).</param>
public sealed record EarlierDotMatchOutcome(DotMatchRecord Stored, RigidTransform HeadFromScalp, RigidTransform InitialHeadFromScalp, TouchUpSurvey? TouchUp = null);

/// <summary>
/// What a touch-up's match found of the recorded dots its head position restores: each is restored only where the
/// camera saw that it faded or is missing; a dot still there, or one the camera cannot see, is left out.
/// </summary>
/// <param name="Candidates">The touch-up's dots of this head position (one per recorded dot).</param>
/// <param name="NotInView">Left out: the camera cannot see where they are, so their state is not known.</param>
/// <param name="Seen">Left out: seen at their place with their usual contrast.</param>
/// <param name="Faded">Kept (restored): seen, with less than <see cref="EarlierDotMatch.FadedContrastRatio"/> of the contrast of the dots seen.</param>
/// <param name="Missing">Kept (restored): expected in view and not seen.</param>
public sealed record TouchUpSurvey(int Candidates, int NotInView, int Seen, int Faded, int Missing)
{
    /// <summary>Left out: a spot near the place (farther than <see cref="EarlierDotMatch.AtItsPlaceMm"/>) may be the dot, or a hair beside a lost one.</summary>
    public int Uncertain { get; init; }

    /// <summary>Dots the touch-up places at this head position.</summary>
    public int Restored => Faded + Missing;

    /// <summary>In words, for the operator and the record.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"touch-up: {Candidates} recorded dot(s) here, {Candidates - NotInView} in view: {Seen} still there, {Faded} faded, {Missing} missing, {Uncertain} with a spot beside them (left out); {Restored} to restore, {NotInView} out of view left out");
}

/// <summary>
/// The first step of a treatment's later session after its scalp was probed: the camera looks at the scalp, finds the
/// healed dots of the earlier sessions (<see cref="HealedDotDetector"/>), matches them to the treatment's record
/// (<see cref="DotRegistration"/>) and so finds where today's board sits on the scalp (T_HS). Accepted, the match
/// becomes the head position's surface registration (the dots are then placed relative to it), and the session's new
/// dots that would fall closer to a dot found than the design allows are left out (<see cref="FoundDotSpacing"/>).
/// Refused (scalp covered, another client's record, too few matches, an ambiguous match), nothing changes but the
/// record of the attempt, and the caller is told why.
/// </summary>
public sealed class EarlierDotMatch
{
    private readonly LedgerStore _ledger;
    private readonly TreatmentManager _treatments;
    private readonly IHeadPoseSource _headPose;
    private readonly SessionManager _sessions;

    public EarlierDotMatch(LedgerStore ledger, TreatmentManager treatments, IHeadPoseSource headPose, SessionManager sessions)
    {
        _ledger = ledger ?? throw new ArgumentNullException(nameof(ledger));
        _treatments = treatments ?? throw new ArgumentNullException(nameof(treatments));
        _headPose = headPose ?? throw new ArgumentNullException(nameof(headPose));
        _sessions = sessions ?? throw new ArgumentNullException(nameof(sessions));
    }

    /// <summary>
    /// Matches the view of head position <paramref name="patch"/> (0: the one the session's next start or resume enters)
    /// of session <paramref name="sessionId"/>. Refuses (<see cref="RefusedException"/>) a session outside a treatment or
    /// its first session (nothing to match), a running session, a controller without a camera or before the board is
    /// seen. A match the registration refuses is returned with <see cref="DotMatchRecord.Accepted"/> false and its reason.
    /// </summary>
    public EarlierDotMatchOutcome Match(string sessionId, int patch)
    {
        var record = _ledger.FindSession(sessionId) ?? throw new RefusedException(RefusalKind.NotFound, $"no session {sessionId}");
        if (record.TreatmentId is not { } treatmentId || _ledger.FindTreatment(treatmentId) is not { } treatment)
        {
            throw new RefusedException(RefusalKind.FailedPrecondition, $"session {sessionId} is not part of a treatment: there is no record of earlier dots to match");
        }
        if (record.Phase is SessionPhase.Running or SessionPhase.Pausing)
        {
            throw new RefusedException(RefusalKind.FailedPrecondition, $"session {sessionId} is running: match the earlier dots before it starts or while it is paused");
        }
        var link = _ledger.FindTreatmentSession(sessionId)!;
        // A design dot placed again (a touch-up restoring it) is one dot on the skin: its latest record is where it is.
        var earlier = _ledger.LoadTreatmentDots(treatmentId, record.TreatmentSessionNumber - 1).Where(d => d.State == DotLedgerState.Placed)
            .GroupBy(d => d.DesignDotId, StringComparer.Ordinal).Select(g => g.Last()).ToList();
        if (earlier.Count == 0)
        {
            throw new RefusedException(RefusalKind.FailedPrecondition, Inv($"treatment {treatmentId} has no dot placed before session {record.TreatmentSessionNumber}: nothing to match (a first session is placed on its surface registration)"));
        }
        if (_headPose is not TrackedHeadPoseSource tracked)
        {
            throw new RefusedException(RefusalKind.FailedPrecondition, $"the controller has no camera ({_headPose.Description}): the earlier dots cannot be seen");
        }
        if (tracked.Frames is not IScalpView view)
        {
            // The search region is where the camera sees skin around the board; it is known for the synthetic scene only.
            throw new RefusedException(RefusalKind.FailedPrecondition, $"no dot search region is configured for the camera {tracked.Description}");
        }
        if (patch <= 0) patch = _sessions.SurfaceNeeded(sessionId).Patch;
        var patches = PlanPatches.OfJson(_ledger.LoadPlanJson(sessionId));
        if (_ledger.LoadDots(sessionId).Any(d => patches.Of(d.Dot.DotId) == patch && d.State != DotLedgerState.Pending))
        {
            throw new RefusedException(RefusalKind.FailedPrecondition, Inv($"head position {patch} of session {sessionId} already has dots placed on its registration: a match now would move the rest"));
        }
        // The needle's depth comes from the skin the probe touched; the camera's match finds where along the skin the
        // board sits. So the head position is probed first, and a match that disagrees with the probed skin is refused.
        var matchRegistrations = _ledger.ListDotMatches(sessionId).Select(m => m.RegistrationId).OfType<string>().ToHashSet(StringComparer.Ordinal);
        var probed = _ledger.ListSurfaceRegistrations(sessionId)
            .Where(r => r.Patch == patch && r.Usable && r.HeightMapJson is null && !matchRegistrations.Contains(r.Id)).MaxBy(r => r.CreatedAt)
            ?? throw new RefusedException(RefusalKind.FailedPrecondition, Inv($"head position {patch} of session {sessionId} is not probed: measure its scalp first (smp surface probe {sessionId} --patch {patch}); the needle's depth comes from the skin the probe touches"));

        var plans = _treatments.PlansOf(treatment);
        var design = plans.Dots.Design;
        var recorded = earlier.Select(d => new RecordedDot(d.DotId, d.MeasuredS ?? d.PlannedS,
            plans.ById.TryGetValue(d.DesignDotId, out var dd) ? dd.Normal : (design.Mesh.ClosestPoint(d.PlannedS, 5) is { } hit ? design.Mesh.NormalAt(hit.Face, hit.U, hit.V) : new Vec3(0, 0, 1)))).ToList();

        var initial = Surface.SurfaceProbing.TransformFromJson(probed.HeadFromScalpJson);
        var contactsH = Surface.SurfaceProbing.InlierContactsHFromJson(probed.ContactsJson);

        var frame = tracked.CopyLastFrameWithPose()
            ?? throw new RefusedException(RefusalKind.FailedPrecondition, $"the camera ({tracked.Description}) has not seen the board yet: the earlier dots cannot be placed in the head frame");
        DotRegistrationResult result;
        IReadOnlyList<DetectedDot> detected;
        Func<Vec3, Vec3, bool> inView;
        using (frame.Image)
        {
            var region = view.DotSearchRegion;
            var detector = new HealedDotDetector(frame.Intrinsics);
            detected = detector.Detect(frame.Image, frame.CameraFromHead, region);
            var cameraH = Rotations.Inverse(frame.CameraFromHead).Translation;
            var intrinsics = frame.Intrinsics;
            var pose = frame.CameraFromHead;
            inView = (pointH, normalH) =>
            {
                if (Vec3.Dot(normalH, cameraH - pointH) <= 0 || !region.Contains(cameraH, pointH)) return false;
                var px = intrinsics.Project(pose.Apply(pointH));
                return px.X >= 8 && px.Y >= 8 && px.X <= intrinsics.WidthPx - 9 && px.Y <= intrinsics.HeightPx - 9;
            };
            result = DotRegistration.Register(recorded, detected.Select(d => new DotObservation(d.OriginH, d.DirectionH, d.DiameterMm)).ToList(), design.Mesh, initial, inView,
                skinContactsH: contactsH);
        }

        byte[]? picture = null;
        if (result.ObservedS.Any(o => o is not null))
        {
            var file = Path.Combine(Path.GetTempPath(), "smp-dot-match-" + Guid.NewGuid().ToString("N") + ".png");
            try
            {
                DotRegistrationPicture.WritePng(result, recorded, Inv($"session {sessionId}, head position {patch}: {result.Matched} of {result.DotsFound} spots matched"), file);
                picture = File.ReadAllBytes(file);
            }
            finally
            {
                File.Delete(file);
            }
        }

        // The match must not contradict what the probe measured: under it, every point the probe touched is on the skin
        // model (the probe measures height and tilt to ~0.01 mm where it touched; the camera the slide). Without stored
        // contacts, the probe's own T_HS stands for them at the matched dots.
        if (result.Accepted && result.Pairs.Count > 0)
        {
            var matchFromHead = Rotations.Inverse(result.HeadFromScalp);
            double worst;
            string where;
            if (contactsH.Count > 0)
            {
                worst = contactsH.Max(c => design.Mesh.ClosestPoint(matchFromHead.Apply(c), 5)?.DistanceMm ?? double.PositiveInfinity);
                where = Inv($"{contactsH.Count} points the probe touched");
            }
            else
            {
                var probeFromHead = Rotations.Inverse(initial);
                worst = result.Pairs.Max(p => design.Mesh.ClosestPoint(probeFromHead.Apply(result.HeadFromScalp.Apply(p.RecordS)), 5)?.DistanceMm ?? double.PositiveInfinity);
                where = "the skin of the probe's registration at the matched dots";
            }
            if (worst > MaxSkinDisagreementMm)
            {
                result = result with
                {
                    Accepted = false,
                    RefusalReason = Inv($"the match puts the skin model {worst:0.000} mm off {where} (at most {MaxSkinDisagreementMm:0.00}): probe again, or the match is wrong"),
                };
            }
        }

        DotMatchChanges? changes = null;
        TouchUpSurvey? survey = null;
        var reason = result.Accepted ? "accepted" : result.RefusalReason ?? "refused";
        if (result.Accepted)
        {
            IReadOnlyDictionary<string, string> leaveOut;
            string why;
            if (link.Kind == TreatmentSessionKind.TouchUp)
            {
                (leaveOut, survey) = SurveyTouchUp(sessionId, patch, earlier, recorded, detected, result, inView);
                why = "a touch-up restores only the dots the camera saw faded or missing";
                reason = "accepted; " + survey;
            }
            else
            {
                leaveOut = Crowded(sessionId, plans, result);
                why = "closer to an earlier session's dot than the design allows";
            }
            changes = new DotMatchChanges(treatment.HeadModelSha256, JsonFormatter.Default.Format(DesignPlans.ToMessage(result.HeadFromScalp)),
                result.ResidualRmsMm, result.ResidualP95Mm, result.Pairs.Count == 0 ? 0 : result.Pairs.Max(p => p.ResidualMm), result.DotsFound, result.Matched,
                Inv($"earlier sessions' dots seen by the camera: {result.Matched} matched of {result.DotsFound} found ({result.ExpectedInView} expected in view)"), leaveOut, why);
        }
        DotMatchRecord stored;
        try
        {
            // The registration, the dots left out and the match's record: one transaction, all or nothing.
            stored = _ledger.SaveDotMatch(sessionId, patch, result.DotsFound, result.ExpectedInView, result.Matched, result.ResidualRmsMm, result.ResidualP95Mm, result.Accepted,
                reason, changes, picture);
        }
        catch (InvalidOperationException e) when (e.Message.Contains("is not Pending", StringComparison.Ordinal))
        {
            throw new RefusedException(RefusalKind.FailedPrecondition, $"session {sessionId} placed dots while its match was computed ({e.Message}); nothing was changed: match again before its next start");
        }
        return new EarlierDotMatchOutcome(stored, result.HeadFromScalp, initial, survey);
    }

    /// <summary>
    /// A touch-up's head position: each of its dots restores one recorded dot. Kept when the camera saw that dot faded
    /// (contrast under <see cref="FadedContrastRatio"/> of the median of the dots seen) or did not see it where it
    /// should be; left out when it is still there, or when the camera cannot see its place (its state is not known).
    /// </summary>
    private (IReadOnlyDictionary<string, string> LeaveOut, TouchUpSurvey Survey) SurveyTouchUp(string sessionId, int patch, List<TreatmentDotRecord> earlier,
        List<RecordedDot> recorded, IReadOnlyList<DetectedDot> detected, DotRegistrationResult result, Func<Vec3, Vec3, bool> inView)
    {
        var patches = PlanPatches.OfJson(_ledger.LoadPlanJson(sessionId));
        var pending = _ledger.LoadDots(sessionId).Where(d => d.State == DotLedgerState.Pending && patches.Of(d.Dot.DotId) == patch)
            .Select(d => d.Dot.DotId).ToHashSet(StringComparer.Ordinal);
        var candidates = _ledger.LoadTreatmentDots(_ledger.FindSession(sessionId)!.TreatmentId!).Where(d => d.SessionId == sessionId && pending.Contains(d.DotId)).ToList();
        // recorded[i] is earlier[i] as the registration knew it.
        var designOfRecord = new Dictionary<string, RecordedDot>(StringComparer.Ordinal);
        for (var i = 0; i < earlier.Count; i++) designOfRecord[earlier[i].DesignDotId] = recorded[i];
        var pairOf = result.Pairs.ToDictionary(p => p.RecordId, StringComparer.Ordinal);
        // The usual look of a dot here: the dots found at their places (not a hair beside a lost one).
        var atPlace = result.Pairs.Where(p => p.ResidualMm <= AtItsPlaceMm).Select(p => detected[p.Observation].Contrast).ToList();
        var typical = atPlace.Count == 0 ? 0 : MathNet.Numerics.Statistics.Statistics.Median(atPlace);
        var leaveOut = new Dictionary<string, string>(StringComparer.Ordinal);
        int notInView = 0, seen = 0, uncertain = 0, faded = 0, missing = 0;
        foreach (var candidate in candidates)
        {
            if (!designOfRecord.TryGetValue(candidate.DesignDotId, out var earlierDot))
            {
                leaveOut[candidate.DotId] = Inv($"left out: no placed dot of design dot {candidate.DesignDotId} is on record");
                notInView++;
                continue;
            }
            var pointH = result.HeadFromScalp.Apply(earlierDot.PointMm);
            var normalH = PatchPlanner.Rotate(result.HeadFromScalp, earlierDot.Normal);
            if (!inView(pointH, normalH))
            {
                leaveOut[candidate.DotId] = Inv($"left out: the camera cannot see dot {earlierDot.Id} from head position {patch}, its state is not known");
                notInView++;
            }
            else if (pairOf.TryGetValue(earlierDot.Id, out var pair) && pair.ResidualMm > AtItsPlaceMm)
            {
                // A spot near the place may be the dot, a little off its record, or a hair: a dot placed beside it would
                // show as a double, so it is not restored blind.
                leaveOut[candidate.DotId] = Inv($"left out: a spot {pair.ResidualMm:0.00} mm from dot {earlierDot.Id} may be it; not restored (look at it: a missing dot can be restored by hand)");
                uncertain++;
            }
            else if (pair is not null && detected[pair.Observation].Contrast >= FadedContrastRatio * typical)
            {
                leaveOut[candidate.DotId] = Inv($"left out: dot {earlierDot.Id} is still there ({pair.ResidualMm:0.00} mm from its record, contrast {detected[pair.Observation].Contrast:0.00}, typical {typical:0.00})");
                seen++;
            }
            else if (pair is not null)
            {
                faded++;
            }
            else
            {
                missing++;
            }
        }
        return (leaveOut, new TouchUpSurvey(candidates.Count, notInView, seen, faded, missing) { Uncertain = uncertain });
    }

    /// <summary>
    /// A spot this close to a recorded dot (after the match) is that dot, mm; a spot farther (up to the match's gate) may be
    /// the dot off its record or a hair beside a lost one, and its dot is not restored.
    /// </summary>
    public const double AtItsPlaceMm = 0.2;

    /// <summary>A dot seen with less than this fraction of the median contrast of the dots seen in the same view has faded.</summary>
    public const double FadedContrastRatio = 0.5;

    /// <summary>The session's pending dots that would fall too close to a dot found, each with its note.</summary>
    private Dictionary<string, string> Crowded(string sessionId, TreatmentDesignPlans plans, DotRegistrationResult result)
    {
        var found = result.Pairs.Select(p => new FoundDot(p.RecordId, result.HeadFromScalp.Apply(p.ObservedS))).ToList();
        // The dots found are where they are in S, whichever head position shows them: every pending dot of the session
        // is held against them (T_HS is the board on the head, the same for all head positions).
        var pending = _ledger.LoadDots(sessionId).Where(d => d.State == DotLedgerState.Pending).Select(d => d.Dot.DotId).ToHashSet(StringComparer.Ordinal);
        var planned = _ledger.LoadTreatmentDots(_ledger.FindSession(sessionId)!.TreatmentId!)
            .Where(d => d.SessionId == sessionId && pending.Contains(d.DotId) && plans.ById.ContainsKey(d.DesignDotId))
            .Select(d => plans.ById[d.DesignDotId]).ToList();
        var notes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var decision in FoundDotSpacing.Check(planned, result.HeadFromScalp, found).Where(d => !d.Keep))
        {
            notes[decision.Dot.Id] = "left out: " + decision.Reason;
        }
        return notes;
    }

    /// <summary>How far the skin under a match may be from the probed skin, mm (probing's RMS is ~0.01, a match's error ~0.03).</summary>
    public const double MaxSkinDisagreementMm = 0.10;

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
