//! Images between datasets, tensors and pictures: frames and labels read into tensors, u8 to
//! [−1, 1] and back, block means, host indices uploaded to the device.

use anyhow::Result;
use rayon::prelude::*;
use storyvis_data::dataset::{Dataset, StoryRecord};
use tch::{Device, Kind, Tensor};

/// Host indices on `device`. To a GPU they go through pinned memory without blocking, so the
/// host never waits for the device to drain its queue.
pub fn upload(index: &[i64], device: Device) -> Tensor {
    let t = Tensor::from_slice(index);
    match device {
        Device::Cpu => t,
        _ => t.pin_memory(device).to_device_(device, Kind::Int64, true, false),
    }
}

/// u8 images → floats in [−1, 1].
pub fn to_unit(images: &Tensor) -> Tensor {
    images.to_kind(Kind::Float) / 127.5 - 1.0
}

/// Images [N, C, S, S] (any kind) averaged down to `side` (S a multiple of it): each output
/// pixel the mean of its (S/side)² block, as f32, 256 images at a time.
pub fn block_mean(images: &Tensor, side: i64) -> Tensor {
    let k = images.size()[3] / side;
    let pooled: Vec<Tensor> = images
        .split(256, 0)
        .iter()
        .map(|c| {
            c.to_kind(Kind::Float).avg_pool2d([k, k], [k, k], [0, 0], false, true, None::<i64>)
        })
        .collect();
    Tensor::cat(&pooled, 0)
}

/// Images in [−1, 1] [3, H, W] → RGB8 bytes, row-major.
pub fn to_rgb8(image: &Tensor) -> Vec<u8> {
    let x = ((image.to_device(Device::Cpu).detach() + 1.0) * 127.5).round().clamp(0.0, 255.0);
    let hwc = x.to_kind(Kind::Uint8).permute([1, 2, 0]).contiguous();
    Vec::<u8>::try_from(hwc.flatten(0, -1)).expect("u8 image")
}

/// An image in [−1, 1] [3, H, W] as an RGB image of its own size.
pub fn to_image(image: &Tensor) -> image::RgbImage {
    let (h, w) = (image.size()[1] as u32, image.size()[2] as u32);
    image::RgbImage::from_raw(w, h, to_rgb8(image))
        .expect("3 × H × W bytes make an H × W RGB image")
}

/// The stories' frames as u8 tensors [N, T, 3, S, S] (S: the dataset's image size), decoded in
/// parallel.
pub fn load_images(ds: &Dataset, stories: &[&StoryRecord]) -> Result<Tensor> {
    let t = ds.header.frames_per_story as i64;
    let frames: Vec<Vec<u8>> = stories
        .par_iter()
        .map(|s| {
            let mut bytes =
                Vec::with_capacity(s.frames.len() * 3 * (ds.header.image_size as usize).pow(2));
            for f in &s.frames {
                let img = ds.load_image(f)?;
                // HWC → CHW
                let raw = img.as_raw();
                for c in 0..3 {
                    bytes.extend(raw.iter().skip(c).step_by(3));
                }
            }
            Ok(bytes)
        })
        .collect::<Result<_>>()?;
    let side = ds.header.image_size as i64;
    Ok(Tensor::from_slice(&frames.concat()).view([stories.len() as i64, t, 3, side, side]))
}

/// The stories' frame labels (objects present) as f32 [N · T · labels], flat.
pub fn load_labels(stories: &[&StoryRecord]) -> Tensor {
    let labels: Vec<f32> = stories
        .iter()
        .flat_map(|s| s.frames.iter().flat_map(|f| f.label.iter().map(|&x| x as f32)))
        .collect();
    Tensor::from_slice(&labels)
}

/// Video clips' frames [N, T, C, S, S] u8 with `channels` channels (1: the first, the grey
/// level): a video dataset stores each clip as a story whose frames are its frames.
pub fn load_clips(ds: &Dataset, clips: &[&StoryRecord], channels: i64) -> Result<Tensor> {
    Ok(load_images(ds, clips)?.narrow(2, 0, channels).contiguous())
}

/// u8 clips [N, T, C, S, S] → the video networks' layout [N, C, T, S, S] in [−1, 1].
pub fn to_network(clips: &Tensor) -> Tensor {
    to_unit(clips).transpose(1, 2)
}
