//! Decoded dataset images by item path, loaded once and shared: figures, reports, MI maps and
//! faithfulness metrics all read the originals through it. It holds at most a stated number of
//! bytes, dropping the least recently used image first, so a long-running viewer does not grow
//! with every image it has shown.

use crate::error::{Error, Result};
use image::RgbImage;
use lru::LruCache;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The default budget of decoded pixels kept: 512 MiB, some 2,000 ImageNet-size photos, more
/// than any report draws.
pub const DEFAULT_STORE_BYTES: usize = 512 << 20;

/// Loads the images of cache items or files, keeping the most recently used within a byte
/// budget (an IDX file is read once for all its images). Shared by reference across the threads
/// that draw figures.
pub struct ImageStore {
    loaded: Mutex<Loaded>,
    idx_files: Mutex<HashMap<String, Arc<super::idx::IdxImages>>>,
}

struct Loaded {
    images: LruCache<String, Arc<RgbImage>>,
    bytes: usize,
    budget: usize,
}

impl Default for ImageStore {
    fn default() -> Self {
        ImageStore::with_budget(DEFAULT_STORE_BYTES)
    }
}

/// A poisoned lock only means another figure failed; the maps stay valid.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn size_of(img: &RgbImage) -> usize {
    img.as_raw().len()
}

impl ImageStore {
    /// A store keeping at most `bytes` of decoded pixels (the image just loaded is always kept
    /// until the next one arrives, however large).
    pub fn with_budget(bytes: usize) -> Self {
        ImageStore {
            loaded: Mutex::new(Loaded {
                images: LruCache::unbounded(),
                bytes: 0,
                budget: bytes,
            }),
            idx_files: Mutex::default(),
        }
    }

    /// Bytes of decoded pixels held now.
    pub fn held_bytes(&self) -> usize {
        lock(&self.loaded).bytes
    }

    /// Images held now.
    pub fn held_images(&self) -> usize {
        lock(&self.loaded).images.len()
    }

    /// The image at `path`: a file, or `<idx file>#<index>` for IDX datasets.
    pub fn get(&self, path: &str) -> Result<Arc<RgbImage>> {
        if let Some(img) = lock(&self.loaded).images.get(path) {
            return Ok(Arc::clone(img));
        }
        // Decoded outside the lock so threads load different images at once.
        let img = Arc::new(self.load(path)?);
        let mut loaded = lock(&self.loaded);
        if let Some(other) = loaded.images.get(path) {
            return Ok(Arc::clone(other));
        }
        loaded.bytes += size_of(&img);
        loaded.images.put(path.to_owned(), Arc::clone(&img));
        while loaded.bytes > loaded.budget && loaded.images.len() > 1 {
            if let Some((_, old)) = loaded.images.pop_lru() {
                loaded.bytes -= size_of(&old);
            }
        }
        Ok(img)
    }

    fn load(&self, path: &str) -> Result<RgbImage> {
        let idx_item = path
            .rsplit_once('#')
            .filter(|(file, _)| !Path::new(path).exists() && Path::new(file).is_file());
        let Some((file, index)) = idx_item else {
            return crate::imageio::load_rgb(path);
        };
        let index: usize = index
            .parse()
            .map_err(|_| Error::input(path, "item index after `#` is not a number"))?;
        let images = {
            let mut files = lock(&self.idx_files);
            match files.get(file) {
                Some(images) => Arc::clone(images),
                None => {
                    let (images, _) = super::idx::read_images(Path::new(file))?;
                    let images = Arc::new(images);
                    files.insert(file.to_owned(), Arc::clone(&images));
                    images
                }
            }
        };
        images.rgb(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recently_used_images_within_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<String> = (0..4)
            .map(|i| {
                let p = dir.path().join(format!("{i}.png"));
                RgbImage::from_pixel(10, 10, image::Rgb([i as u8 * 60, 0, 0]))
                    .save(&p)
                    .unwrap();
                p.display().to_string()
            })
            .collect();
        // 300 bytes an image: room for two.
        let store = ImageStore::with_budget(650);
        store.get(&paths[0]).unwrap();
        store.get(&paths[1]).unwrap();
        store.get(&paths[0]).unwrap();
        store.get(&paths[2]).unwrap();
        assert_eq!((store.held_images(), store.held_bytes()), (2, 600));
        // 1 was the least recently used: 0 and 2 stay.
        let held: Vec<bool> = paths
            .iter()
            .map(|p| lock(&store.loaded).images.contains(p))
            .collect();
        assert_eq!(held, [true, false, true, false]);
        for p in paths.iter().cycle().take(20) {
            assert_eq!(store.get(p).unwrap().width(), 10);
            assert!(store.held_bytes() <= 650);
        }
    }
}
