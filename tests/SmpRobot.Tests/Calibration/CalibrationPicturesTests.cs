using OpenCvSharp;
using SmpRobot.Geometry;
using SmpRobot.Vision.Calibration;
using static SmpRobot.Tests.Calibration.RigidFitTests;

namespace SmpRobot.Tests.Calibration;

public sealed class CalibrationPicturesTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "smp-calib-pictures-" + Guid.NewGuid().ToString("N"));

    public CalibrationPicturesTests() => Directory.CreateDirectory(_dir);

    private static RigidFitReport NoisyFitWithOutlier()
    {
        var cameraFromGantry = Rotations.Inverse(TrueGantryFromCamera());
        var rng = new Random(21);
        var gantry = GantryGrid();
        var camera = gantry.Select(g => cameraFromGantry.Apply(g) + Gaussian(rng, 0.03)).ToList();
        camera[6] += new Vec3(0.8, 0.4, 0);
        return RigidFit.Fit(camera, gantry);
    }

    [Fact]
    public void Residual_picture_has_the_requested_size_and_shows_arrows_at_the_stated_scale()
    {
        var report = NoisyFitWithOutlier();
        var path = Path.Combine(_dir, "residuals.png");
        var scale = CalibrationPictures.WriteResidualsPng(path, report, new PictureOptions { Notes = ["calibration 7, camera usb-0"] });

        using var image = Cv2.ImRead(path);
        Assert.Equal(new Size(1100, 800), image.Size());
        // Inlier residuals are ~0.05 mm over a 60 mm span: the automatic scale must be a round factor that makes them visible.
        Assert.InRange(scale, 20, 1000);
        Assert.Contains(scale, new[] { 20.0, 50, 100, 200, 500, 1000 });
        // Something was drawn in the plot area (not a blank page): at least a few percent non-white pixels.
        using var gray = image.CvtColor(ColorConversionCodes.BGR2GRAY);
        using var plot = new Mat(gray, new Rect(95, 60, 1100 - 95 - 330, 800 - 60 - 70));
        Assert.True(Cv2.CountNonZero(plot.LessThan(200)) > 2000);

        var fixedScale = CalibrationPictures.WriteResidualsPng(Path.Combine(_dir, "fixed.png"), report.Points, new PictureOptions { ArrowScale = 200, WidthPx = 900, HeightPx = 700 });
        Assert.Equal(200, fixedScale);
        using var small = Cv2.ImRead(Path.Combine(_dir, "fixed.png"));
        Assert.Equal(new Size(900, 700), small.Size());
    }

    [Fact]
    public void Histogram_picture_has_the_requested_size()
    {
        var report = NoisyFitWithOutlier();
        var path = Path.Combine(_dir, "histogram.png");
        CalibrationPictures.WriteHistogramPng(path, report);
        using var image = Cv2.ImRead(path);
        Assert.Equal(new Size(1100, 800), image.Size());

        var plain = Path.Combine(_dir, "plain.png");
        CalibrationPictures.WriteHistogramPng(plain, [0.01, 0.02, 0.02, 0.03, 0.05], r63Mm: 0.025, r98Mm: 0.05, options: new PictureOptions { WidthPx = 640, HeightPx = 480 });
        using var small = Cv2.ImRead(plain);
        Assert.Equal(new Size(640, 480), small.Size());
        // The r98 line is drawn in red near x = 0.05 mm.
        Assert.True(Cv2.CountNonZero(small.InRange(new Scalar(0, 0, 150), new Scalar(100, 100, 255))) > 100);
    }

    public void Dispose()
    {
        if (Environment.GetEnvironmentVariable("SMP_KEEP_PICTURES") is { Length: > 0 } keep)
        {
            Directory.CreateDirectory(keep);
            foreach (var f in Directory.GetFiles(_dir)) File.Copy(f, Path.Combine(keep, Path.GetFileName(f)), true);
        }
        Directory.Delete(_dir, recursive: true);
    }
}
