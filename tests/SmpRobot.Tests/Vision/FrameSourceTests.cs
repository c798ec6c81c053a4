using Microsoft.Extensions.Time.Testing;
using OpenCvSharp;
using SmpRobot.Vision;

namespace SmpRobot.Tests.Vision;

public sealed class FrameSourceTests
{
    [Theory]
    [InlineData("ftp:x")]
    [InlineData("device:abc")]
    [InlineData("device:0@12x10")]
    [InlineData("synthetic:bogus")]
    [InlineData("synthetic:3")]
    [InlineData("synthetic:still@1280")]
    [InlineData("file:")]
    public void Malformed_specs_are_refused(string spec)
    {
        Assert.Throws<ArgumentException>(() => FrameSources.Parse(spec, new FakeTimeProvider()));
    }

    [Fact]
    public void Synthetic_frames_carry_the_clock_timestamp_and_ground_truth()
    {
        var clock = new FakeTimeProvider();
        using var source = FrameSources.Parse("synthetic:sway@640x360", clock);
        Assert.Equal(640, source.Intrinsics!.WidthPx);
        var start = clock.GetTimestamp();
        clock.Advance(TimeSpan.FromMilliseconds(1000));
        using var frame = source.Read()!;
        Assert.Equal(clock.GetTimestamp(), frame.CapturedTimestamp);
        Assert.Equal(new Size(640, 360), frame.Image.Size());
        Assert.Equal(MatType.CV_8UC3, frame.Image.Type());

        var scene = ((SyntheticFrameSource)source).Scene;
        var elapsed = clock.GetElapsedTime(start).TotalSeconds;
        Assert.Equal(scene.TruthAt(elapsed).Translation, frame.TruthCameraFromHead!.Value.Translation);
        // Sway moved the head away from rest after a second.
        Assert.True(frame.TruthCameraFromHead.Value.Translation.DistanceTo(SyntheticScene.RestCameraFromHead.Translation) > 1.0);
    }

    [Fact]
    public void Synthetic_scene_is_deterministic_and_noise_differs_between_frames()
    {
        var k = CameraIntrinsics.Synthetic(640, 360);
        using var a = new SyntheticScene(SyntheticScenario.Still, k, seed: 7);
        using var b = new SyntheticScene(SyntheticScenario.Still, k, seed: 7);
        using var a0 = a.Render(0.2, 3);
        using var b0 = b.Render(0.2, 3);
        using var a1 = a.Render(0.2, 4);
        Assert.Equal(0, Cv2.Norm(a0, b0, NormTypes.L1));
        Assert.True(Cv2.Norm(a0, a1, NormTypes.L1) > 0);
    }

    [Fact]
    public void Image_folder_source_reads_images_in_name_order_then_ends()
    {
        var dir = Directory.CreateTempSubdirectory("smp-vision-frames-");
        try
        {
            using (var scene = new SyntheticScene(SyntheticScenario.Still, CameraIntrinsics.Synthetic(320, 180)))
            {
                for (var i = 0; i < 3; i++)
                {
                    using var image = scene.Render(i / 30.0, i);
                    Cv2.ImWrite(Path.Combine(dir.FullName, $"frame{i:000}.png"), image);
                }
            }
            File.WriteAllText(Path.Combine(dir.FullName, "notes.txt"), "not an image");
            var clock = new FakeTimeProvider();
            using var source = FrameSources.Parse("file:" + dir.FullName, clock);
            var sequences = new List<long>();
            while (source.Read() is { } frame)
            {
                using (frame)
                {
                    Assert.Equal(new Size(320, 180), frame.Image.Size());
                    Assert.Equal(clock.GetTimestamp(), frame.CapturedTimestamp);
                    sequences.Add(frame.Sequence);
                }
            }
            Assert.Equal([0L, 1L, 2L], sequences);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
