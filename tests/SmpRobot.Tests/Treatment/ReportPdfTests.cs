using Microsoft.Extensions.Time.Testing;
using PdfSharp.Pdf;
using PdfSharp.Pdf.IO;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Reports;

namespace SmpRobot.Tests.Treatment;

/// <summary>The PDF reports (issue #14): real PDFs that PDFsharp reads back, honest about what is missing.</summary>
public sealed class ReportPdfTests
{
    private static readonly DateTimeOffset GeneratedAt = new(2026, 3, 9, 12, 30, 0, TimeSpan.Zero);

    private static ReportPdf Writer() => new(new FakeTimeProvider(GeneratedAt));

    private static (byte[] Pdf, IReadOnlyList<string> Pages) Session(SessionReportData data)
    {
        using var stream = new MemoryStream();
        var pages = Writer().Session(data, stream);
        AssertNoEmptyPage(pages);
        return (stream.ToArray(), pages);
    }

    /// <summary>Every page has something besides its header and footer (four lines).</summary>
    internal static void AssertNoEmptyPage(IReadOnlyList<string> pages) =>
        Assert.All(pages, p => Assert.True(p.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length > 4, "an empty page:\n" + p));

    private static PdfDocument Read(byte[] pdf) => PdfReader.Open(new MemoryStream(pdf), PdfDocumentOpenMode.Import);

    [Fact]
    public void A_session_report_is_a_multi_page_pdf_that_names_its_session_on_every_page()
    {
        var data = ReportSamples.Session();

        var (pdf, pages) = Session(data);

        using var doc = Read(pdf);
        Assert.Equal(pages.Count, doc.PageCount);
        Assert.InRange(doc.PageCount, 8, 16);
        Assert.Contains("session 2 of 3", doc.Info.Title, StringComparison.Ordinal);
        Assert.Contains("S-2026-0042-2", doc.Info.Subject, StringComparison.Ordinal);
        Assert.Contains("T-2026-0042", doc.Info.Subject, StringComparison.Ordinal);
        for (var i = 0; i < pages.Count; i++)
        {
            Assert.Contains($"page {i + 1} of {pages.Count}", pages[i], StringComparison.Ordinal);
            Assert.Contains("treatment T-2026-0042 · session S-2026-0042-2", pages[i], StringComparison.Ordinal);
            Assert.Contains("generated 2026-03-09 12:30:00 UTC", pages[i], StringComparison.Ordinal);
        }
        var all = string.Join("\n", pages);
        // The client only by pseudonym; the pictures all drawn (design, plan, offsets, density, two histograms, timeline).
        Assert.Contains("C-7F3A", all, StringComparison.Ordinal);
        Assert.Equal(7, CountOf(all, "[picture]"));
        Assert.Contains("Emergency stops: 1.", all, StringComparison.Ordinal);
        Assert.Contains("EMERGENCY STOP from the console", all, StringComparison.Ordinal);
        Assert.Contains("cal-2026-03-02-a", all, StringComparison.Ordinal);
        Assert.Contains("withdrawn: re-check", all, StringComparison.Ordinal);
        Assert.Contains("carol", all, StringComparison.Ordinal);
        Assert.Contains(data.Dots.First(d => d.State == ReportDotState.InDoubt).DotId, all, StringComparison.Ordinal);
    }

    [Fact]
    public void A_long_audit_extract_flows_over_pages_with_its_header_repeated()
    {
        var (shortPdf, shortPages) = Session(ReportSamples.Session(auditEntries: 10));
        var (longPdf, longPages) = Session(ReportSamples.Session(auditEntries: 600));

        Assert.True(longPages.Count >= shortPages.Count + 10, $"{shortPages.Count} -> {longPages.Count} pages");
        using var doc = Read(longPdf);
        Assert.Equal(longPages.Count, doc.PageCount);
        // Every entry is there once, and each page the table runs onto starts with its header.
        var all = string.Join("\n", longPages);
        Assert.Equal(600, CountOf(all, "smprobot.v1."));
        var auditPages = longPages.Where(p => p.Contains("smprobot.v1.", StringComparison.Ordinal)).ToList();
        Assert.True(auditPages.Count >= 10);
        Assert.All(auditPages, p => Assert.Contains("call\nresult", p, StringComparison.Ordinal));
        Assert.True(shortPdf.Length < longPdf.Length);
    }

    [Fact]
    public void A_session_that_placed_nothing_says_none_instead_of_drawing_empty_plots()
    {
        var (pdf, pages) = Session(ReportSamples.EmptySession());

        using var doc = Read(pdf);
        Assert.Equal(pages.Count, doc.PageCount);
        var all = string.Join("\n", pages);
        // Only the design and the plan are pictures: no offsets, density, histograms or timeline without data.
        Assert.Equal(2, CountOf(all, "[picture]"));
        Assert.Contains("Placement: none measured", all, StringComparison.Ordinal);
        Assert.Contains("Depth: none measured", all, StringComparison.Ordinal);
        Assert.Contains("None: the first session has no earlier dots to match.", all, StringComparison.Ordinal);
        Assert.Contains("None: no dot was placed in this session.", all, StringComparison.Ordinal);
        Assert.Contains("Holds: none. Pauses: none. Emergency stops: none.", all, StringComparison.Ordinal);
        Assert.Contains("Calibration: none recorded", all, StringComparison.Ordinal);
        Assert.Contains("Surface registration: none", all, StringComparison.Ordinal);
        Assert.Contains("never started", all, StringComparison.Ordinal);
        Assert.DoesNotContain("NaN", all, StringComparison.Ordinal);
    }

    [Fact]
    public void A_later_session_without_a_match_says_so_and_a_session_without_dots_draws_no_plan()
    {
        var data = ReportSamples.EmptySession() with { SessionNumber = 2, Dots = [] };

        var (_, pages) = Session(data);

        var all = string.Join("\n", pages);
        Assert.Contains("None: no match to the earlier sessions' dots was made for this session.", all, StringComparison.Ordinal);
        Assert.Contains("None: the plan has no dots.", all, StringComparison.Ordinal);
        Assert.Equal(1, CountOf(all, "[picture]"));
    }

    [Fact]
    public void The_same_data_and_time_give_the_same_pages_and_size_within_bounds()
    {
        var data = ReportSamples.Session();

        var (a, pagesA) = Session(data);
        var (b, pagesB) = Session(data);

        Assert.Equal(pagesA, pagesB);
        // Only the PDF's random file id differs between runs; its length does not.
        Assert.Equal(a.Length, b.Length);
        Assert.InRange(a.Length, 200_000, 6_000_000);
    }

    [Fact]
    public void A_treatment_report_names_the_treatment_and_lists_each_session_and_touch_up()
    {
        var data = ReportSamples.Treatment();
        using var stream = new MemoryStream();

        var pages = Writer().Treatment(data, stream);
        AssertNoEmptyPage(pages);

        using var doc = Read(stream.ToArray());
        Assert.Equal(pages.Count, doc.PageCount);
        Assert.InRange(doc.PageCount, 3, 6);
        Assert.Equal("SMP treatment report", doc.Info.Title);
        Assert.Contains("Treatment T-2026-0042", doc.Info.Subject, StringComparison.Ordinal);
        var all = string.Join("\n", pages);
        foreach (var s in data.Sessions) Assert.Contains(s.SessionId, all, StringComparison.Ordinal);
        Assert.Contains("none (first)", all, StringComparison.Ordinal);
        Assert.Contains("fading at the left temple", all, StringComparison.Ordinal);
        Assert.Equal(3, CountOf(all, "[picture]"));
        Assert.All(pages, p => Assert.Contains("treatment T-2026-0042", p, StringComparison.Ordinal));
    }

    [Fact]
    public void A_treatment_with_no_dots_yet_says_none()
    {
        var data = ReportSamples.Treatment() with { Sessions = [], Dots = [], TouchUps = [] };
        using var stream = new MemoryStream();

        var pages = Writer().Treatment(data, stream);
        AssertNoEmptyPage(pages);

        var all = string.Join("\n", pages);
        Assert.Contains("None: no dot has been placed yet.", all, StringComparison.Ordinal);
        Assert.Contains("None yet.", all, StringComparison.Ordinal);
        Assert.Equal(1, CountOf(all, "[picture]"));
    }

    [Fact]
    public void A_missing_font_fails_naming_the_package()
    {
        var fonts = ReportFonts.ForDirectory(Path.Combine(Path.GetTempPath(), "no-fonts-here-" + Guid.NewGuid().ToString("N")));

        var error = Assert.Throws<FileNotFoundException>(fonts.Check);

        Assert.Contains("fonts-dejavu-core", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Density_counts_dots_within_the_radius_in_three_dimensions_per_square_centimetre()
    {
        // A 1 mm square grid: about π·5² = 78.5 dots within 5 mm of a dot far from the edge, i.e. 100 per cm².
        var grid = new List<Vec3>();
        for (var x = -20; x <= 20; x++)
        {
            for (var y = -20; y <= 20; y++) grid.Add(new Vec3(x, y, 0));
        }

        var density = ReportPictures.LocalDensityPerCm2(grid, 5);

        var centre = density[grid.IndexOf(new Vec3(0, 0, 0))];
        Assert.InRange(centre, 95, 105);
        Assert.True(density[0] < centre / 2, "a corner sees a quarter disc");
    }

    [Fact]
    public void The_report_map_is_the_scalp_map_for_the_same_frame()
    {
        var frame = ReportSamples.Frame;
        var p = ReportSamples.OnHead(12.5, -30);

        var m = frame.ToMap(p);

        Assert.Equal(12.5, m.X, 9);
        Assert.Equal(-30, m.Y, 9);
    }

    /// <summary>
    /// Writes the sample reports (seeded: ~2,000 dots, a few holds, one e-stop) to $SMP_REPORT_SAMPLES or a temp
    /// folder, for a person to look at: `dotnet test --filter FullyQualifiedName~ReportPdfTests.Samples`.
    /// </summary>
    [Fact]
    public void Samples_are_written_for_a_person_to_look_at()
    {
        var dir = Environment.GetEnvironmentVariable("SMP_REPORT_SAMPLES") is { Length: > 0 } d ? d : Path.Combine(Path.GetTempPath(), "smp-report-samples");
        Directory.CreateDirectory(dir);
        var writer = Writer();
        using (var file = File.Create(Path.Combine(dir, "session.pdf"))) writer.WriteSession(ReportSamples.Session(), file);
        using (var file = File.Create(Path.Combine(dir, "session-empty.pdf"))) writer.WriteSession(ReportSamples.EmptySession(), file);
        using (var file = File.Create(Path.Combine(dir, "treatment.pdf"))) writer.WriteTreatment(ReportSamples.Treatment(), file);
        foreach (var f in Directory.GetFiles(dir, "*.pdf")) Assert.True(new FileInfo(f).Length > 10_000, f);
    }

    private static int CountOf(string text, string part)
    {
        var n = 0;
        for (var i = text.IndexOf(part, StringComparison.Ordinal); i >= 0; i = text.IndexOf(part, i + part.Length, StringComparison.Ordinal)) n++;
        return n;
    }
}
