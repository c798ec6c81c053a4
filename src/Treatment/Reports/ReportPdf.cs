using System.Globalization;
using PdfSharp.Drawing;
using PdfSharp.Pdf;
using SmpRobot.Geometry;

namespace SmpRobot.Treatment.Reports;

/// <summary>
/// Writes the session and treatment reports as multi-page A4 PDFs (PDFsharp 6.2, MIT; fonts: <see cref="ReportFonts"/>).
/// </summary>
/// <remarks>
/// Contract: every page carries the report's title and the session's or treatment's id in its header and "page k of
/// n" with the generation time (from the <see cref="TimeProvider"/> given, printed in UTC) in its footer; the
/// document's Title and Subject name the session or treatment. What was not measured or did not happen is said in
/// words ("none: ..."): no plot is drawn without data and no figure is made up. The client appears only by the
/// pseudonym the data carries. Output depends only on the data and the time (the PDF's internal file id aside).
/// </remarks>
public sealed class ReportPdf
{
    private readonly TimeProvider _time;
    private readonly ReportFonts _fonts;

    /// <summary>A writer stamping reports with <paramref name="time"/>'s UTC now; installs the fonts (throws when DejaVu Sans is missing).</summary>
    public ReportPdf(TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        _time = time;
        _fonts = ReportFonts.Install();
    }

    /// <summary>Writes the report of one session to <paramref name="output"/> (left open).</summary>
    public void WriteSession(SessionReportData data, Stream output) => Session(data, output);

    /// <summary>Writes the session report and returns the text drawn on each page (for tests).</summary>
    internal IReadOnlyList<string> Session(SessionReportData data, Stream output)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(output);
        var title = string.Create(CultureInfo.InvariantCulture, $"SMP session report — session {data.SessionNumber} of {data.SessionCount}");
        var id = $"treatment {data.TreatmentId} · session {data.SessionId}";
        return Write(title, id, $"Session {data.SessionId} (session {data.SessionNumber} of {data.SessionCount}) of treatment {data.TreatmentId}",
            flow => SessionReport.Write(flow, data, _fonts), output);
    }

    /// <summary>Writes the report of a whole treatment to <paramref name="output"/> (left open).</summary>
    public void WriteTreatment(TreatmentReportData data, Stream output) => Treatment(data, output);

    /// <summary>Writes the treatment report and returns the text drawn on each page (for tests).</summary>
    internal IReadOnlyList<string> Treatment(TreatmentReportData data, Stream output)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(output);
        const string Title = "SMP treatment report";
        var id = $"treatment {data.TreatmentId}";
        return Write(Title, id, $"Treatment {data.TreatmentId}: {data.Sessions.Count} of {data.PlannedSessions} sessions",
            flow => TreatmentReport.Write(flow, data, _fonts), output);
    }

    /// <summary>A document titled <paramref name="title"/>: <paramref name="body"/>'s pages with the header and footer; returns each page's text.</summary>
    private IReadOnlyList<string> Write(string title, string id, string subject, Action<PdfFlow> body, Stream output)
    {
        using var doc = NewDocument(title, subject);
        IReadOnlyList<string> text;
        using (var flow = new PdfFlow(doc))
        {
            body(flow);
            flow.Finish(title, id, _time.GetUtcNow());
            text = flow.PageTexts;
        }
        doc.Save(output, closeStream: false);
        return text;
    }

    private PdfDocument NewDocument(string title, string subject)
    {
        var doc = new PdfDocument();
        var now = _time.GetUtcNow().UtcDateTime;
        doc.Info.Title = title;
        doc.Info.Subject = subject;
        doc.Info.Author = "SmpRobot";
        doc.Info.Creator = "SmpRobot reports";
        doc.Info.CreationDate = now;
        doc.Info.ModificationDate = now;
        doc.Options.CompressContentStreams = true;
        return doc;
    }
}

/// <summary>Figures of a set of values: count, RMS, 95th percentile, max, mean.</summary>
internal sealed record Stats(int Count, double Mean, double Rms, double P95, double Max, double Min)
{
    public static Stats? Of(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0) return null;
        var sorted = values.Order().ToArray();
        return new Stats(sorted.Length, sorted.Average(), Math.Sqrt(sorted.Average(v => v * v)), Percentile(sorted, 0.95), sorted[^1], sorted[0]);
    }

    /// <summary>Linear interpolation between the closest ranks of a sorted array.</summary>
    public static double Percentile(double[] sorted, double p)
    {
        var at = p * (sorted.Length - 1);
        var lo = (int)Math.Floor(at);
        var hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + ((sorted[hi] - sorted[lo]) * (at - lo));
    }
}

/// <summary>Shared wording.</summary>
internal static class Say
{
    public static string Mm(double v) => v.ToString("0.000", CultureInfo.InvariantCulture) + " mm";

    public static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);

    public static string Time(DateTimeOffset? t, string missing) => t is { } v ? Time(v) : missing;

    /// <summary>A time in a table whose header says UTC.</summary>
    public static string Cell(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);

    public static string Date(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    public static string N(int n) => n.ToString("N0", CultureInfo.InvariantCulture);

    public static string Duration(TimeSpan d) => d.TotalHours >= 1
        ? string.Create(CultureInfo.InvariantCulture, $"{(int)d.TotalHours} h {d.Minutes:00} min")
        : string.Create(CultureInfo.InvariantCulture, $"{d.Minutes} min {d.Seconds:00} s");

    /// <summary>A round number ≥ <paramref name="v"/> (1, 2, 2.5, 5 × 10^k), for a scale's top.</summary>
    public static double NiceCeiling(double v)
    {
        if (!(v > 0)) return 1;
        var mag = Math.Pow(10, Math.Floor(Math.Log10(v)));
        return new[] { 1.0, 2, 2.5, 5, 10 }.Select(f => f * mag).First(s => s >= v - 1e-12);
    }
}

/// <summary>The session report's sections.</summary>
internal static class SessionReport
{
    public static void Write(PdfFlow flow, SessionReportData data, ReportFonts fonts)
    {
        var dots = data.Dots;
        var placed = dots.Where(d => d.State == ReportDotState.Placed).ToList();
        var offsets = placed.Where(d => d.MeasuredOffsetSMm is not null).Select(d => d.MeasuredOffsetSMm!.Value.Length).ToList();
        var depths = placed.Where(d => d.DepthErrorMm is not null).Select(d => d.DepthErrorMm!.Value).ToList();
        var events = data.Timeline.OrderBy(e => e.At).ToList();

        flow.Title(
            string.Create(CultureInfo.InvariantCulture, $"Session {data.SessionNumber} of {data.SessionCount}: {data.PlanName}"),
            $"Treatment {data.TreatmentId}, client {data.ClientPseudonym}, design {data.Design.Name}. Positions are in the scalp frame S (mm), times in UTC.");

        flow.Heading("Session");
        var duration = data.Started is { } s && data.Ended is { } e ? Say.Duration(e - s) : "not ended";
        flow.KeyValues([
            ("Treatment", data.TreatmentId),
            ("Client (pseudonym)", data.ClientPseudonym),
            ("Design", data.Design.Name),
            ("Session", string.Create(CultureInfo.InvariantCulture, $"{data.SessionNumber} of {data.SessionCount}")),
            ("Session id", data.SessionId),
            ("Plan", data.PlanName),
            ("Machine profile", data.Profile),
            ("Created", Say.Time(data.Created)),
            ("Started", Say.Time(data.Started, "never started")),
            ("Ended", Say.Time(data.Ended, "not ended")),
            ("Started to ended", duration),
            ("Final phase", data.FinalPhase),
            ("Reason", string.IsNullOrWhiteSpace(data.FinalReason) ? "none given" : data.FinalReason),
        ]);

        flow.Heading("Dots");
        int Count(ReportDotState st) => dots.Count(d => d.State == st);
        flow.Table(
            ["planned", "placed", "skipped", "pending", "in doubt", "flagged", "checked by camera", "depth measured"],
            [1, 1, 1, 1, 1, 1, 1.4, 1.4],
            [[Say.N(dots.Count), Say.N(placed.Count), Say.N(Count(ReportDotState.Skipped)), Say.N(Count(ReportDotState.Pending)),
              Say.N(Count(ReportDotState.InDoubt)), Say.N(dots.Count(d => d.Flagged)), Say.N(offsets.Count), Say.N(depths.Count)]]);
        if (Count(ReportDotState.InDoubt) > 0)
        {
            flow.Paragraph(string.Create(CultureInfo.InvariantCulture,
                $"{Count(ReportDotState.InDoubt)} dot(s) are in doubt: a fault came between the intent and the firmware's confirmation; they were not redone and need the operator's decision."),
                brush: XBrushes.DarkRed);
        }

        flow.Heading("Placement and depth (measured)");
        var placement = Stats.Of(offsets);
        flow.Paragraph(placement is null
            ? "Placement: none measured — the camera checked no placed dot in this session."
            : string.Create(CultureInfo.InvariantCulture,
                $"Placement, the camera's check against the plan: {placement.Count:N0} of {placed.Count:N0} placed dots checked; offset RMS {Say.Mm(placement.Rms)}, 95th percentile {Say.Mm(placement.P95)}, max {Say.Mm(placement.Max)}."));
        var depth = Stats.Of(depths);
        flow.Paragraph(depth is null
            ? "Depth: none measured in this session."
            : string.Create(CultureInfo.InvariantCulture,
                $"Depth reached minus planned (positive: deeper): {depth.Count:N0} dots; mean {depth.Mean:+0.000;-0.000} mm, RMS {Say.Mm(depth.Rms)}, 95th percentile of |error| {Say.Mm(Stats.Of([.. depths.Select(Math.Abs)])!.P95)}, range {depth.Min:+0.000;-0.000} to {depth.Max:+0.000;-0.000} mm."));

        flow.Heading("Who operated");
        if (data.Operators.Count == 0) flow.Paragraph("None recorded.");
        else flow.Table(["time (UTC)", "user", "role", "action"], [1.4, 1, 0.9, 3], data.Operators.OrderBy(o => o.At).Select(o => (IReadOnlyList<string>)[Say.Cell(o.At), o.User, o.Role, o.Action]));

        flow.Heading("Calibration and surface registration used");
        if (data.Calibration is { } cal)
        {
            flow.Table(["calibration", "created", "RMS", "by"], [2, 1.6, 1, 1.4], [[cal.CalibrationId, Say.Time(cal.Created), Say.Mm(cal.RmsMm), cal.By]]);
        }
        else
        {
            flow.Paragraph("Calibration: none recorded for this session.");
        }
        if (data.Registrations.Count == 0)
        {
            flow.Paragraph("Surface registration: none — no head position of this session was registered.");
        }
        else
        {
            flow.Table(
                ["head position", "model", "RMS", "p95", "contacts", "inliers", "valid"],
                [1, 1.1, 1, 1, 0.9, 0.9, 2.2],
                data.Registrations.OrderBy(r => r.HeadPosition).Select(r => (IReadOnlyList<string>)[
                    r.HeadPosition.ToString(CultureInfo.InvariantCulture), r.Model, Say.Mm(r.RmsMm), Say.Mm(r.P95Mm), Say.N(r.Contacts), Say.N(r.Inliers),
                    r.WithdrawnBecause is { } w ? "withdrawn: " + w : r.Valid ? "yes" : "no"]));
        }

        flow.Heading("Match to earlier sessions' dots");
        if (data.Match is { } match)
        {
            flow.KeyValues([
                ("Earlier dots found", Say.N(match.DotsFound)),
                ("Matched to the record", Say.N(match.DotsMatched)),
                ("Residual RMS", Say.Mm(match.ResidualRmsMm)),
                ("Residual p95", Say.Mm(match.ResidualP95Mm)),
            ]);
            if (match.PicturePng is { } png) flow.Image(png.ToArray(), "The cross-session match, as the matcher drew it.", 360);
        }
        else
        {
            flow.Paragraph(data.SessionNumber <= 1
                ? "None: the first session has no earlier dots to match."
                : "None: no match to the earlier sessions' dots was made for this session.");
        }

        // Pictures: design, plan, offsets, density.
        flow.Heading("The design");
        flow.Image(data.Design.PicturePng?.ToArray() ?? ReportPictures.DesignOutline(data.Design, fonts),
            data.Design.PicturePng is null
                ? $"Design {data.Design.Name}: its outline on the scalp map (azimuthal equidistant around the vertex, front up)."
                : $"Design {data.Design.Name}, as rendered by the design preview.", MapHeight);

        flow.Heading("This session's plan");
        if (dots.Count == 0)
        {
            flow.Paragraph("None: the plan has no dots.");
        }
        else
        {
            flow.Image(ReportPictures.PlanMap(data.Design, dots, fonts),
                "Every dot of the plan at its planned place on the scalp map, coloured by how it ended; dots that need attention are drawn larger and on top.", MapHeight);
        }

        flow.Heading("Placed against planned");
        if (placement is null)
        {
            flow.Paragraph("None: the camera checked no placed dot, so there is no measured offset to draw.");
        }
        else
        {
            var exaggeration = Exaggeration(placement.P95);
            var colourMax = Say.NiceCeiling(placement.Max);
            flow.Image(ReportPictures.OffsetMap(data.Design, dots, exaggeration, colourMax, fonts),
                string.Create(CultureInfo.InvariantCulture,
                    $"Each checked dot: an arrow from its planned place along the offset the camera measured, drawn {exaggeration:0}× its true length (positions to scale); colour: the offset's true length, 0 to {colourMax:0.###} mm."), MapHeight);
        }

        flow.Heading("Density placed in this session");
        if (placed.Count == 0)
        {
            flow.Paragraph("None: no dot was placed in this session.");
        }
        else
        {
            var points = placed.Select(d => d.PlannedS).ToList();
            var max = DensityTop(points);
            flow.Image(ReportPictures.DensityMap(data.Design, points, DensityRadiusMm, max, "dots/cm² (this session)", fonts),
                string.Create(CultureInfo.InvariantCulture,
                    $"Dots placed in this session per cm² of skin, counted within {DensityRadiusMm:0} mm of each dot in 3-D (edges read low), at the planned places; bare skin where no dot is within 3 mm on the map."), MapHeight);
        }

        flow.Heading("Placement error");
        if (placement is null)
        {
            flow.Paragraph("None measured.");
        }
        else
        {
            var top = Say.NiceCeiling(Math.Max(placement.Max, 0.05));
            flow.Image(ReportPictures.Histogram(offsets, 0, top, 25, "offset of the placed dot from its plan, mm (camera's check)", null, null, fonts),
                string.Create(CultureInfo.InvariantCulture, $"{placement.Count:N0} dots; RMS {Say.Mm(placement.Rms)}, p95 {Say.Mm(placement.P95)}, max {Say.Mm(placement.Max)}."), 260);
        }

        flow.Heading("Depth error");
        if (depth is null)
        {
            flow.Paragraph("None measured.");
        }
        else
        {
            var half = Say.NiceCeiling(Math.Max(Math.Max(Math.Abs(depth.Min), Math.Abs(depth.Max)), 0.05));
            flow.Image(ReportPictures.Histogram(depths, -half, half, 30, "depth reached minus planned, mm (positive: deeper)", 0, null, fonts),
                string.Create(CultureInfo.InvariantCulture, $"{depth.Count:N0} dots; mean {depth.Mean:+0.000;-0.000} mm, RMS {Say.Mm(depth.Rms)}."), 260);
        }

        flow.Heading("Holds and emergency stops");
        var stops = events.Where(e => e.Kind is TimelineEventKind.Hold or TimelineEventKind.Pause or TimelineEventKind.EmergencyStop).ToList();
        flow.Paragraph(string.Create(CultureInfo.InvariantCulture,
            $"Holds: {Words(events.Count(e => e.Kind == TimelineEventKind.Hold))}. Pauses: {Words(events.Count(e => e.Kind == TimelineEventKind.Pause))}. Emergency stops: {Words(events.Count(e => e.Kind == TimelineEventKind.EmergencyStop))}."));
        if (events.Count > 0)
        {
            var start = new[] { data.Started ?? data.Created, events[0].At }.Min();
            var end = new[] { data.Ended ?? events[^1].At, events[^1].At }.Max();
            if (stops.Count > 0) flow.Image(ReportPictures.Timeline(start, end, events, fonts), "The session's timeline: each event on its lane; shaded, the time held (from a hold, pause or e-stop to the next resume).", 220);
            flow.Table(["time (UTC)", "event", "by", "reason"], [1.4, 0.8, 0.8, 4.2],
                events.Select(e => (IReadOnlyList<string>)[Say.Cell(e.At), ReportPictures.KindName(e.Kind), e.By ?? "machine", string.IsNullOrWhiteSpace(e.Reason) ? "—" : e.Reason]));
        }

        flow.Heading("Flagged dots");
        var flagged = dots.Where(d => d.Flagged).ToList();
        if (flagged.Count == 0) flow.Paragraph("None.");
        else
        {
            flow.Table(["dot", "state", "planned (S, mm)", "offset", "depth error", "reason"], [1, 0.8, 1.7, 0.9, 1.1, 2.8],
                flagged.Select(d => (IReadOnlyList<string>)[
                    d.DotId, ReportPictures.StateName(d.State), Position(d.PlannedS),
                    d.MeasuredOffsetSMm is { } o ? Say.Mm(o.Length) : "not measured",
                    d.DepthErrorMm is { } de ? de.ToString("+0.000;-0.000", CultureInfo.InvariantCulture) + " mm" : "not measured",
                    d.FlagReason!]));
        }

        flow.Heading("Audit extract");
        if (data.Audit.Count == 0) flow.Paragraph("None.");
        else
        {
            flow.Table(["time (UTC)", "user", "role", "call", "result"], [1.6, 0.75, 0.75, 2.75, 1.75],
                data.Audit.OrderBy(a => a.At).Select(a => (IReadOnlyList<string>)[Say.Cell(a.At), a.User, a.Role, a.Rpc, a.Result]));
        }
    }

    /// <summary>A map picture's height on the page, points: two maps with their headings and captions fit on a page.</summary>
    public const double MapHeight = 285;

    /// <summary>Radius of the density count, mm: about 80 dots at a full density of 1/mm², few enough to see a zone's edge.</summary>
    public const double DensityRadiusMm = 5;

    /// <summary>The density scale's top: a round number above nearly all dots' values (the 99th percentile).</summary>
    public static double DensityTop(IReadOnlyList<Vec3> points)
    {
        var density = ReportPictures.LocalDensityPerCm2(points, DensityRadiusMm).Order().ToArray();
        return Say.NiceCeiling(Stats.Percentile(density, 0.99));
    }

    /// <summary>How much longer the arrows are drawn than the offsets: a round factor making the 95th percentile about 3 mm on the map (1× to 200×).</summary>
    public static double Exaggeration(double p95Mm)
    {
        double[] steps = [1, 2, 5, 10, 20, 50, 100, 200];
        var want = p95Mm > 0 ? 3 / p95Mm : 200;
        return steps.LastOrDefault(s => s <= want, 1);
    }

    private static string Words(int n) => n == 0 ? "none" : n.ToString(CultureInfo.InvariantCulture);

    private static string Position(Vec3 p) => string.Create(CultureInfo.InvariantCulture, $"{p.X:0.00}, {p.Y:0.00}, {p.Z:0.00}");
}

/// <summary>The treatment report's sections.</summary>
internal static class TreatmentReport
{
    public static void Write(PdfFlow flow, TreatmentReportData data, ReportFonts fonts)
    {
        var sessions = data.Sessions.OrderBy(s => s.SessionNumber).ToList();
        flow.Title("Treatment " + data.TreatmentId,
            $"Client {data.ClientPseudonym}, design {data.Design.Name}. Positions are in the scalp frame S (mm), times in UTC.");

        flow.Heading("Treatment");
        flow.KeyValues([
            ("Treatment", data.TreatmentId),
            ("Client (pseudonym)", data.ClientPseudonym),
            ("Design", data.Design.Name),
            ("Sessions", string.Create(CultureInfo.InvariantCulture, $"{sessions.Count} of {data.PlannedSessions} planned")),
            ("Dots placed", Say.N(data.Dots.Count)),
            ("Touch-ups", data.TouchUps.Count == 0 ? "none" : Say.N(data.TouchUps.Count)),
        ]);

        flow.Heading("Sessions");
        if (sessions.Count == 0) flow.Paragraph("None yet.");
        else
        {
            flow.Table(["#", "date", "session id", "placed / planned", "holds", "e-stops", "match residual RMS", "final phase"],
                [0.35, 1.1, 1.7, 1.3, 0.65, 0.85, 1.4, 1.35],
                sessions.Select(s => (IReadOnlyList<string>)[
                    s.SessionNumber.ToString(CultureInfo.InvariantCulture), Say.Date(s.Date), s.SessionId,
                    $"{Say.N(s.DotsPlaced)} / {Say.N(s.DotsPlanned)}", Say.N(s.Holds), Say.N(s.EmergencyStops),
                    s.MatchResidualRmsMm is { } m ? Say.Mm(m) : s.SessionNumber <= 1 ? "none (first)" : "none",
                    s.FinalPhase]));
        }

        flow.Heading("Touch-ups");
        if (data.TouchUps.Count == 0) flow.Paragraph("None.");
        else
        {
            flow.Table(["date", "session id", "dots placed", "reason"], [1, 1.8, 1, 3],
                data.TouchUps.OrderBy(t => t.Date).Select(t => (IReadOnlyList<string>)[Say.Date(t.Date), t.SessionId, Say.N(t.DotsPlaced), t.Reason]));
        }

        flow.Heading("The design");
        flow.Image(data.Design.PicturePng?.ToArray() ?? ReportPictures.DesignOutline(data.Design, fonts),
            data.Design.PicturePng is null
                ? $"Design {data.Design.Name}: its outline on the scalp map (azimuthal equidistant around the vertex, front up)."
                : $"Design {data.Design.Name}, as rendered by the design preview.", SessionReport.MapHeight);

        flow.Heading("Cumulative density");
        if (data.Dots.Count == 0)
        {
            flow.Paragraph("None: no dot has been placed yet.");
        }
        else
        {
            var points = data.Dots.Select(d => d.PlacedS).ToList();
            var max = SessionReport.DensityTop(points);
            flow.Image(ReportPictures.DensityMap(data.Design, points, SessionReport.DensityRadiusMm, max, "dots/cm² (all sessions)", fonts),
                string.Create(CultureInfo.InvariantCulture,
                    $"All dots placed so far per cm² of skin, counted within {SessionReport.DensityRadiusMm:0} mm of each dot in 3-D (edges read low)."), SessionReport.MapHeight);

            flow.Heading("Dots by session");
            flow.Image(ReportPictures.SessionMap(data.Design, data.Dots, fonts), "Every dot placed, coloured by the session that placed it (later sessions on top).", SessionReport.MapHeight);
        }
    }
}
