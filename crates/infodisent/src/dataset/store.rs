//! Decoded dataset images by item path, loaded once and shared: figures, reports, MI maps and
//! faithfulness metrics all read the originals through it.

use crate::error::{Error, Result};
use image::RgbImage;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Loads the images of cache items or files, keeping what it loaded for reuse (an IDX file is
/// read once for all its images). Shared by reference across the threads that draw figures.
#[derive(Default)]
pub struct ImageStore {
    loaded: Mutex<HashMap<String, Arc<RgbImage>>>,
    idx_files: Mutex<HashMap<String, Arc<super::idx::IdxImages>>>,
}

/// A poisoned lock only means another figure failed; the maps stay valid.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ImageStore {
    /// The image at `path`: a file, or `<idx file>#<index>` for IDX datasets.
    pub fn get(&self, path: &str) -> Result<Arc<RgbImage>> {
        if let Some(img) = lock(&self.loaded).get(path) {
            return Ok(Arc::clone(img));
        }
        // Decoded outside the lock so threads load different images at once.
        let img = Arc::new(self.load(path)?);
        Ok(Arc::clone(
            lock(&self.loaded).entry(path.to_owned()).or_insert(img),
        ))
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
