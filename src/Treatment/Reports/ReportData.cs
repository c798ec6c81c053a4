using SmpRobot.Geometry;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Surface;

namespace SmpRobot.Treatment.Reports;

// The inputs of the PDF reports (issue #14): plain immutable records that the controller's data (or a test) fills.
// Nothing here reads a store or speaks gRPC. Lengths are millimetres and times are absolute instants
// (DateTimeOffset, printed in UTC) unless a name says otherwise. Anything that may not exist is nullable or an
// empty list, and the report then says "none" or "not measured" rather than drawing empty axes.

/// <summary>
/// How the report lays frame S out on paper: the same azimuthal equidistant map around the vertex as
/// <see cref="ScalpMap"/> (X towards the person's right, Y towards the front, mm of arc on a
/// <see cref="ScalpMap.ReferenceRadiusMm"/> sphere), given by the head's centre and directions alone so a report
/// needs no mesh.
/// </summary>
/// <param name="CenterS">The head's centre, frame S, mm.</param>
/// <param name="UpS">Unit direction to the vertex, frame S.</param>
/// <param name="FrontS">Unit direction to the face, perpendicular to <paramref name="UpS"/>, frame S.</param>
public sealed record ReportMapFrame(Vec3 CenterS, Vec3 UpS, Vec3 FrontS)
{
    /// <summary>The frame of a design's scalp map (its pictures then match the design's own).</summary>
    public static ReportMapFrame From(ScalpMap map)
    {
        ArgumentNullException.ThrowIfNull(map);
        return new ReportMapFrame(map.Center, map.Up, map.Front);
    }

    /// <summary>The map point of a point of (or near) the surface; equal to <see cref="ScalpMap.ToMap"/> for the same frame.</summary>
    public MapPoint ToMap(Vec3 pointS)
    {
        var right = Vec3.Cross(FrontS, UpS);
        var d = (pointS - CenterS).Normalized();
        var polar = Math.Acos(Math.Clamp(Vec3.Dot(d, UpS), -1, 1));
        var azimuth = Math.Atan2(Vec3.Dot(d, right), Vec3.Dot(d, FrontS));
        var r = polar * ScalpMap.ReferenceRadiusMm;
        return new MapPoint(r * Math.Sin(azimuth), r * Math.Cos(azimuth));
    }
}

/// <summary>What an outline curve of the design is, for its colour and its legend.</summary>
public enum OutlineKind
{
    /// <summary>The hairline (an open curve).</summary>
    Hairline,

    /// <summary>A zone's boundary (closed).</summary>
    Zone,

    /// <summary>A scar (closed or open).</summary>
    Scar,

    /// <summary>An exclusion, where no dot may go (closed).</summary>
    Exclusion,
}

/// <summary>One curve of the design's outline, its points on the skin in frame S, mm.</summary>
public sealed record OutlineCurve(OutlineKind Kind, string Name, IReadOnlyList<Vec3> PointsS, bool Closed);

/// <summary>
/// The design as the report draws it: the map frame, its outline curves and, when the caller has one, a picture it
/// rendered itself (for example <see cref="Preview.DesignPreview.Render"/>), embedded as given.
/// </summary>
/// <param name="Name">The design's name.</param>
/// <param name="Map">How frame S is laid out on paper.</param>
/// <param name="Outline">The hairline, zones, scars and exclusions; may be empty.</param>
/// <param name="PicturePng">A pre-rendered picture of the design (PNG bytes), or null.</param>
public sealed record ReportDesign(string Name, ReportMapFrame Map, IReadOnlyList<OutlineCurve> Outline, ReadOnlyMemory<byte>? PicturePng = null)
{
    /// <summary>The outline of a resolved design (hairline, zones, scars, exclusions) in its own map frame.</summary>
    public static ReportDesign From(ResolvedDesign design, string name, ReadOnlyMemory<byte>? picturePng = null)
    {
        ArgumentNullException.ThrowIfNull(design);
        var curves = new List<OutlineCurve>();
        if (design.Hairline is { } h) curves.Add(new OutlineCurve(OutlineKind.Hairline, "hairline", h.Line.Points, false));
        curves.AddRange(design.Zones.Select(z => new OutlineCurve(OutlineKind.Zone, z.Settings.Name, z.Boundary.Polyline.Points, true)));
        curves.AddRange(design.Scars.Select(s => new OutlineCurve(OutlineKind.Scar, s.Settings.Name, s.Outline.Polyline.Points, s.Outline.Polyline.Closed)));
        curves.AddRange(design.Exclusions.Select(e => new OutlineCurve(OutlineKind.Exclusion, e.Name, e.Outline.Polyline.Points, true)));
        return new ReportDesign(name, ReportMapFrame.From(design.Map), curves, picturePng);
    }
}

/// <summary>How a dot ended the session (the ledger's final states; a dot still Commanded is reported InDoubt).</summary>
public enum ReportDotState
{
    /// <summary>Placed and confirmed by the firmware.</summary>
    Placed,

    /// <summary>Skipped (by the operator or a rule).</summary>
    Skipped,

    /// <summary>Not reached.</summary>
    Pending,

    /// <summary>A fault between intent and confirmation; unresolved.</summary>
    InDoubt,
}

/// <summary>One dot of a session as the report shows it.</summary>
/// <param name="DotId">The plan's dot id.</param>
/// <param name="PlannedS">Planned position on the skin, frame S, mm.</param>
/// <param name="TargetGMm">The commanded gantry target (frame G, mm, after step quantisation), or null when never commanded.</param>
/// <param name="State">How it ended.</param>
/// <param name="MeasuredOffsetSMm">Where the camera's check saw the dot minus where it was planned, frame S, mm; null when not checked.</param>
/// <param name="DepthPlannedMm">The planned depth below the skin, mm.</param>
/// <param name="DepthErrorMm">Depth reached minus planned, mm (positive: deeper); null when not measured.</param>
/// <param name="Zone">The zone or scar it belongs to, or null.</param>
/// <param name="FlagReason">Why the dot was flagged for the practitioner's attention, or null when not flagged.</param>
public sealed record ReportDot(
    string DotId,
    Vec3 PlannedS,
    Vec3? TargetGMm,
    ReportDotState State,
    Vec3? MeasuredOffsetSMm,
    double DepthPlannedMm,
    double? DepthErrorMm,
    string? Zone = null,
    string? FlagReason = null)
{
    /// <summary>Whether the dot was flagged.</summary>
    public bool Flagged => FlagReason is not null;
}

/// <summary>What happened at a moment of the session's timeline.</summary>
public enum TimelineEventKind
{
    /// <summary>An automatic motion hold (head moved, pose stale, dead-man, alarm...).</summary>
    Hold,

    /// <summary>The operator paused.</summary>
    Pause,

    /// <summary>An emergency stop latched.</summary>
    EmergencyStop,

    /// <summary>Placing went on (resume or start).</summary>
    Resume,

    /// <summary>An e-stop latch was reset.</summary>
    Reset,
}

/// <summary>One event of the session's timeline.</summary>
/// <param name="At">When it happened.</param>
/// <param name="Kind">What it was.</param>
/// <param name="Reason">The reason as recorded (free text), or empty.</param>
/// <param name="By">The user who caused it, or null for the machine.</param>
public sealed record TimelineEvent(DateTimeOffset At, TimelineEventKind Kind, string Reason, string? By = null);

/// <summary>What an operator did in the session (authenticated users only: the report never names the client).</summary>
/// <param name="User">The authenticated user name.</param>
/// <param name="Role">The user's role.</param>
/// <param name="Action">What they did ("started", "resumed", "resolved 3 in-doubt dots"...).</param>
/// <param name="At">When.</param>
public sealed record OperatorAction(string User, string Role, string Action, DateTimeOffset At);

/// <summary>The camera-to-gantry calibration used.</summary>
/// <param name="CalibrationId">Its id.</param>
/// <param name="Created">When it was made.</param>
/// <param name="RmsMm">Its residual RMS, mm.</param>
/// <param name="By">Who made it.</param>
public sealed record CalibrationUsed(string CalibrationId, DateTimeOffset Created, double RmsMm, string By);

/// <summary>A surface registration used by the session.</summary>
/// <param name="HeadPosition">The plan's head position (patch number).</param>
/// <param name="RmsMm">Residual RMS, mm.</param>
/// <param name="P95Mm">95th percentile of the residuals, mm.</param>
/// <param name="Contacts">Probe contacts.</param>
/// <param name="Inliers">Contacts the fit used.</param>
/// <param name="Valid">Whether it was within the tolerances.</param>
/// <param name="Model">The model registered ("mesh", "height-map"...).</param>
/// <param name="WithdrawnBecause">Why a re-check withdrew it, or null.</param>
public sealed record SurfaceRegistrationUsed(int HeadPosition, double RmsMm, double P95Mm, int Contacts, int Inliers, bool Valid, string Model = "mesh", string? WithdrawnBecause = null);

/// <summary>The match of this session's camera view to the dots earlier sessions placed.</summary>
/// <param name="DotsFound">Earlier dots the camera found.</param>
/// <param name="DotsMatched">Of those, matched to the treatment record.</param>
/// <param name="ResidualRmsMm">Residual after the fit, RMS, mm.</param>
/// <param name="ResidualP95Mm">Residual, 95th percentile, mm.</param>
/// <param name="PicturePng">A picture of the match (PNG bytes), or null.</param>
public sealed record DotMatchResult(int DotsFound, int DotsMatched, double ResidualRmsMm, double ResidualP95Mm, ReadOnlyMemory<byte>? PicturePng = null);

/// <summary>One entry of the audit log.</summary>
public sealed record AuditEntry(DateTimeOffset At, string User, string Role, string Rpc, string Result);

/// <summary>
/// Everything a session report shows. The client appears only by <paramref name="ClientPseudonym"/>, never by name.
/// </summary>
/// <param name="TreatmentId">The treatment.</param>
/// <param name="ClientPseudonym">The client's pseudonymous id.</param>
/// <param name="Design">The design (outline, map frame, optional picture).</param>
/// <param name="SessionNumber">This session's number, 1-based.</param>
/// <param name="SessionCount">Sessions the treatment plans.</param>
/// <param name="SessionId">The controller's session id.</param>
/// <param name="PlanName">The plan's name.</param>
/// <param name="Profile">The machine profile.</param>
/// <param name="Created">When the session was created.</param>
/// <param name="Started">When placing first started, or null.</param>
/// <param name="Ended">When it ended, or null while it has not.</param>
/// <param name="FinalPhase">The session's last phase ("Completed", "EmergencyStopped"...).</param>
/// <param name="FinalReason">Why it ended there, or empty.</param>
/// <param name="Operators">Who started, resumed, resolved.</param>
/// <param name="Dots">Every dot of the session's plan.</param>
/// <param name="Timeline">Holds, pauses, e-stops, resumes, in any order (the report sorts them).</param>
/// <param name="Calibration">The calibration used, or null.</param>
/// <param name="Registrations">The surface registrations used.</param>
/// <param name="Match">The cross-session dot match, or null (always for a first session).</param>
/// <param name="Audit">An extract of the audit log.</param>
public sealed record SessionReportData(
    string TreatmentId,
    string ClientPseudonym,
    ReportDesign Design,
    int SessionNumber,
    int SessionCount,
    string SessionId,
    string PlanName,
    string Profile,
    DateTimeOffset Created,
    DateTimeOffset? Started,
    DateTimeOffset? Ended,
    string FinalPhase,
    string FinalReason,
    IReadOnlyList<OperatorAction> Operators,
    IReadOnlyList<ReportDot> Dots,
    IReadOnlyList<TimelineEvent> Timeline,
    CalibrationUsed? Calibration,
    IReadOnlyList<SurfaceRegistrationUsed> Registrations,
    DotMatchResult? Match,
    IReadOnlyList<AuditEntry> Audit);

/// <summary>One session in a treatment report.</summary>
/// <param name="SessionNumber">1-based.</param>
/// <param name="SessionId">The controller's session id.</param>
/// <param name="Date">When it started (or was created, when it never started).</param>
/// <param name="DotsPlaced">Dots placed.</param>
/// <param name="DotsPlanned">Dots its plan had.</param>
/// <param name="Holds">Holds and pauses.</param>
/// <param name="EmergencyStops">E-stops.</param>
/// <param name="MatchResidualRmsMm">The cross-session match's residual RMS, mm, or null (first session, or none made).</param>
/// <param name="FinalPhase">Its last phase.</param>
public sealed record SessionSummary(int SessionNumber, string SessionId, DateTimeOffset Date, int DotsPlaced, int DotsPlanned, int Holds, int EmergencyStops, double? MatchResidualRmsMm, string FinalPhase);

/// <summary>A dot placed in the treatment, for the cumulative pictures.</summary>
/// <param name="PlacedS">Where it was placed, frame S, mm (the planned position, or the camera's when measured).</param>
/// <param name="SessionNumber">The session that placed it.</param>
public sealed record PlacedDot(Vec3 PlacedS, int SessionNumber);

/// <summary>A touch-up after the planned sessions.</summary>
/// <param name="Date">When.</param>
/// <param name="SessionId">The session that did it.</param>
/// <param name="DotsPlaced">Dots it placed.</param>
/// <param name="Reason">Why (fading, a patch the client asked for...).</param>
public sealed record TouchUp(DateTimeOffset Date, string SessionId, int DotsPlaced, string Reason);

/// <summary>Everything a treatment report shows; the client only by pseudonym.</summary>
/// <param name="TreatmentId">The treatment.</param>
/// <param name="ClientPseudonym">The client's pseudonymous id.</param>
/// <param name="Design">The design.</param>
/// <param name="PlannedSessions">Sessions the design plans.</param>
/// <param name="Sessions">Each session so far, in any order (the report sorts them by number).</param>
/// <param name="Dots">Every dot ever placed.</param>
/// <param name="TouchUps">Touch-ups, possibly none.</param>
public sealed record TreatmentReportData(
    string TreatmentId,
    string ClientPseudonym,
    ReportDesign Design,
    int PlannedSessions,
    IReadOnlyList<SessionSummary> Sessions,
    IReadOnlyList<PlacedDot> Dots,
    IReadOnlyList<TouchUp> TouchUps);
