using System.Globalization;
using Microsoft.Extensions.Time.Testing;
using PdfSharp.Pdf.IO;
using SmpRobot.Treatment.Preview;
using SmpRobot.Treatment.Reports;

namespace SmpRobot.Tests.Treatment;

/// <summary>Reports of a real design (the synthetic head's Norwood IV): its outline and map, its dots, its preview picture.</summary>
public sealed class ReportFromDesignTests(DesignFixture fixture) : IClassFixture<DesignFixture>
{
    [Fact]
    public void The_report_map_frame_is_the_designs_scalp_map()
    {
        var frame = ReportMapFrame.From(fixture.Resolved.Map);

        foreach (var dot in fixture.Dots.Dots.Take(200))
        {
            var expected = fixture.Resolved.Map.ToMap(dot.PointMm);
            var actual = frame.ToMap(dot.PointMm);
            Assert.Equal(expected.X, actual.X, 9);
            Assert.Equal(expected.Y, actual.Y, 9);
        }
    }

    [Fact]
    public void A_session_and_a_treatment_of_a_real_design_are_written_with_its_outline_and_preview()
    {
        using var preview = DesignPreview.Render(fixture.Dots, new HashSet<int> { 1 }, "session 1", 4);
        using var png = preview.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        var design = ReportDesign.From(fixture.Resolved, "Norwood IV (synthetic head)", png.ToArray());
        Assert.Contains(design.Outline, c => c.Kind == OutlineKind.Hairline);
        Assert.Contains(design.Outline, c => c.Kind == OutlineKind.Zone);

        var sample = ReportSamples.Session(sessionNumber: 1, auditEntries: 20);
        var dots = fixture.Dots.Dots.Where(d => d.Session == 1).Select((d, i) => new ReportDot(
            d.Id, d.PointMm, null, i % 50 == 49 ? ReportDotState.Skipped : ReportDotState.Placed, null, d.DepthMm, null, d.Region.Name)).ToList();
        var data = sample with { Design = design, Dots = dots };
        var treatment = ReportSamples.Treatment() with
        {
            Design = design,
            Dots = [.. fixture.Dots.Dots.Select(d => new PlacedDot(d.PointMm, d.Session))],
        };
        var writer = new ReportPdf(new FakeTimeProvider(new DateTimeOffset(2026, 3, 9, 12, 30, 0, TimeSpan.Zero)));
        using var session = new MemoryStream();
        using var whole = new MemoryStream();

        var sessionPages = writer.Session(data, session);
        var treatmentPages = writer.Treatment(treatment, whole);

        ReportPdfTests.AssertNoEmptyPage(sessionPages);
        ReportPdfTests.AssertNoEmptyPage(treatmentPages);
        using (var doc = PdfReader.Open(new MemoryStream(session.ToArray()), PdfDocumentOpenMode.Import)) Assert.Equal(sessionPages.Count, doc.PageCount);
        using (var doc = PdfReader.Open(new MemoryStream(whole.ToArray()), PdfDocumentOpenMode.Import)) Assert.Equal(treatmentPages.Count, doc.PageCount);
        Assert.Contains("as rendered by the design preview", string.Join("\n", sessionPages), StringComparison.Ordinal);
        Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"{dots.Count:N0}\n{dots.Count(d => d.State == ReportDotState.Placed):N0}\n"), string.Join("\n", sessionPages), StringComparison.Ordinal);

        // Kept beside the synthetic samples for a person to look at.
        var dir = Environment.GetEnvironmentVariable("SMP_REPORT_SAMPLES") is { Length: > 0 } d ? d : Path.Combine(Path.GetTempPath(), "smp-report-samples");
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, "design-session.pdf"), session.ToArray());
        File.WriteAllBytes(Path.Combine(dir, "design-treatment.pdf"), whole.ToArray());
    }
}
