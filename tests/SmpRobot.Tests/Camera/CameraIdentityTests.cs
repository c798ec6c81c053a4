using SmpRobot.Controller.Calibration;

namespace SmpRobot.Tests.Camera;

public sealed class CameraIdentityTests : IDisposable
{
    private readonly string _byId = Directory.CreateTempSubdirectory("smp-v4l-").FullName;

    public void Dispose() => Directory.Delete(_byId, recursive: true);

    [Fact]
    public void A_device_is_named_by_its_stable_udev_link_whatever_its_index_or_resolution()
    {
        File.CreateSymbolicLink(Path.Combine(_byId, "usb-046d_HD_Webcam_C615_8A2B-video-index0"), "/dev/video3");
        Assert.Equal("v4l2:usb-046d_HD_Webcam_C615_8A2B-video-index0", CameraIdentity.Of("device:3", _byId));
        Assert.Equal("v4l2:usb-046d_HD_Webcam_C615_8A2B-video-index0", CameraIdentity.Of("device:3@1920x1080", _byId));
        // Without a link (no udev, e.g. a container) the index is all there is.
        Assert.Equal("device:2", CameraIdentity.Of("device:2@640x480", _byId));
        Assert.Equal("device:0", CameraIdentity.Of("device:0", Path.Combine(_byId, "absent")));
    }

    [Fact]
    public void A_recording_is_its_full_path_and_the_synthetic_camera_one_camera_per_size()
    {
        Assert.Equal("file:" + Path.GetFullPath("frames"), CameraIdentity.Of("file:frames"));
        Assert.Equal(CameraIdentity.Of("file:" + Path.GetFullPath("frames")), CameraIdentity.Of("file:./frames"));
        Assert.Equal("synthetic@1280x720", CameraIdentity.Of("synthetic:sway"));
        Assert.Equal("synthetic@640x480", CameraIdentity.Of("synthetic@640x480"));
        Assert.Equal("none", CameraIdentity.Of("none"));
    }
}
